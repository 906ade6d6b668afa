//! Session modes offered only through the legacy `modes` block, as a config option.
//!
//! Some agents (gemini-cli, say) answer `session/new` with `modes` (`availableModes`,
//! `currentModeId`) and no mode config option, so an editor that shows config options would
//! never see their modes. For such an agent the proxy adds a select of category `mode` built
//! from the block; picking in it becomes `session/set_mode` on the agent, and the agent's
//! `current_mode_update` keeps it current. Clients that speak the legacy surface still get the
//! block itself.

use serde_json::{json, Value};

/// The config option id of a mode select made from a legacy block.
pub const MODE_OPTION_ID: &str = "mode";

/// The legacy `modes` block of a `session/new` (or load/resume) result, if it lists modes.
pub fn legacy_modes(result: &Value) -> Option<Value> {
    let modes = result.get("modes")?;
    modes.get("availableModes")?.as_array()?;
    Some(modes.clone())
}

/// Whether the agent's own options already let a client pick a mode.
pub fn has_mode_option(options: &[Value]) -> bool {
    options.iter().any(|o| {
        o.get("category").and_then(Value::as_str) == Some("mode")
            || o.get("id").and_then(Value::as_str) == Some(MODE_OPTION_ID)
    })
}

/// A select of category `mode` with the block's modes, its current mode selected.
pub fn mode_option(modes: &Value) -> Value {
    let options: Vec<Value> = modes
        .get("availableModes")
        .and_then(Value::as_array)
        .map(|available| {
            available
                .iter()
                .filter_map(|mode| {
                    let id = mode.get("id").and_then(Value::as_str)?;
                    let mut option = json!({
                        "value": id,
                        "name": mode.get("name").and_then(Value::as_str).unwrap_or(id),
                    });
                    if let Some(description) = mode.get("description").and_then(Value::as_str) {
                        option["description"] = json!(description);
                    }
                    Some(option)
                })
                .collect()
        })
        .unwrap_or_default();
    let current = modes
        .get("currentModeId")
        .cloned()
        .or_else(|| options.first().map(|o| o["value"].clone()))
        .unwrap_or(Value::Null);
    json!({
        "id": MODE_OPTION_ID,
        "name": "Mode",
        "category": "mode",
        "type": "select",
        "currentValue": current,
        "options": options,
    })
}

/// Whether `mode` is one of the block's modes.
pub fn offers(modes: &Value, mode: &str) -> bool {
    modes
        .get("availableModes")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|m| m.get("id").and_then(Value::as_str) == Some(mode))
        })
}

/// Records `mode` as current in the block.
pub fn set_current(modes: &mut Value, mode: &str) {
    if let Some(block) = modes.as_object_mut() {
        block.insert("currentModeId".into(), json!(mode));
    }
}

/// The mode a `current_mode_update` names, if `update` is one.
pub fn mode_update(update: &Value) -> Option<&str> {
    if update.get("sessionUpdate").and_then(Value::as_str) != Some("current_mode_update") {
        return None;
    }
    update.get("currentModeId").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemini() -> Value {
        json!({"sessionId": "s", "modes": {"availableModes": [
            {"id": "default", "name": "Default", "description": "Prompts for approval"},
            {"id": "autoEdit", "name": "Auto Edit"},
            {"id": "yolo"}], "currentModeId": "autoEdit"}})
    }

    #[test]
    fn a_legacy_block_becomes_a_mode_select() {
        let modes = legacy_modes(&gemini()).unwrap();
        let option = mode_option(&modes);
        assert_eq!(option["id"], "mode");
        assert_eq!(option["category"], "mode");
        assert_eq!(option["type"], "select");
        assert_eq!(option["currentValue"], "autoEdit");
        assert_eq!(
            option["options"],
            json!([
                {"value": "default", "name": "Default", "description": "Prompts for approval"},
                {"value": "autoEdit", "name": "Auto Edit"},
                {"value": "yolo", "name": "yolo"},
            ])
        );
        assert!(offers(&modes, "yolo"));
        assert!(!offers(&modes, "plan"));
    }

    #[test]
    fn no_block_or_an_empty_one_is_no_modes() {
        assert!(legacy_modes(&json!({"sessionId": "s"})).is_none());
        assert!(legacy_modes(&json!({"modes": {"currentModeId": "x"}})).is_none());
        assert!(legacy_modes(&json!({"modes": null})).is_none());
    }

    #[test]
    fn an_agents_own_mode_option_is_recognised() {
        assert!(has_mode_option(&[
            json!({"id": "permissions", "category": "mode"})
        ]));
        assert!(has_mode_option(&[json!({"id": "mode"})]));
        assert!(!has_mode_option(&[
            json!({"id": "effort", "category": "thought_level"})
        ]));
    }

    #[test]
    fn updates_keep_the_block_current() {
        let mut modes = legacy_modes(&gemini()).unwrap();
        let update = json!({"sessionUpdate": "current_mode_update", "currentModeId": "yolo"});
        set_current(&mut modes, mode_update(&update).unwrap());
        assert_eq!(mode_option(&modes)["currentValue"], "yolo");
        assert!(mode_update(&json!({"sessionUpdate": "plan"})).is_none());
    }
}
