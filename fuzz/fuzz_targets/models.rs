//! Reading model selectors (`ModelMenu::from_session`) and resolving `agent:model` picks
//! (`Catalog::resolve`) over arbitrary agent answers and arbitrary picked values.
//!
//! Input: a JSON value, used as the `session/new` result of agent `alpha` (and its `beta`
//! member as that of agent `b.e-t_a`). Properties: no panic anywhere; a menu always offers at
//! least one model; every offered model resolves back to its own agent and bare id; and any
//! value that resolves names an agent of the catalog and one of that agent's models, with the
//! value being exactly `agent:model`.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use terok_executor::acp::models::{ModelMenu, ModelSelector, DEFAULT_MODEL};
use terok_executor::acp::picker::{agent_options_without_model, namespaced, Catalog};
use terok_executor::acp::probe::AgentProbe;
use terok_executor::acp::runtime::AgentName;

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    if out.len() > 64 {
        return;
    }
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k);
            strings(v, out)
        }),
        _ => {}
    }
}

fn check_menu(menu: &ModelMenu) {
    assert!(!menu.models.is_empty(), "a menu offers at least one model");
    if menu.selector == ModelSelector::None {
        assert_eq!(menu.models.len(), 1);
        assert_eq!(menu.models[0].id, DEFAULT_MODEL);
    }
    if let ModelSelector::ConfigOption { id } = &menu.selector {
        let _ = id.len();
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        if let Ok(text) = std::str::from_utf8(data) {
            // A picked value that is not JSON at all still resolves safely.
            let catalog = Catalog::new(Vec::new());
            assert!(catalog.resolve(text).is_err());
        }
        return;
    };
    let alpha = ModelMenu::from_session(&value);
    let beta = ModelMenu::from_session(value.get("beta").unwrap_or(&Value::Null));
    check_menu(&alpha);
    check_menu(&beta);
    let probe = |name: &str, menu: ModelMenu| {
        Arc::new(AgentProbe {
            agent: AgentName::new(name).expect("a valid test name"),
            initialize: value.get("init").cloned().unwrap_or(Value::Null),
            menu,
            modes: terok_executor::acp::modes::legacy_modes(&value),
        })
    };
    let catalog = Catalog::new(vec![probe("alpha", alpha.clone()), probe("b.e-t_a", beta)]);
    for agent in catalog.agents() {
        let _ = agent.title();
        if let Some(modes) = &agent.modes {
            let option = terok_executor::acp::modes::mode_option(modes);
            assert_eq!(option["category"], "mode");
        }
        for model in &agent.menu.models {
            let pick = catalog
                .resolve(&namespaced(&agent.agent, &model.id))
                .expect("every offered model resolves");
            assert_eq!(pick.agent.agent, agent.agent);
            assert_eq!(pick.model, model.id);
        }
    }
    let mut picked = Vec::new();
    strings(&value, &mut picked);
    for text in picked {
        if let Ok(pick) = catalog.resolve(text) {
            assert!(catalog.agent(pick.agent.agent.as_str()).is_some());
            assert!(pick.agent.menu.contains(&pick.model));
            assert_eq!(namespaced(&pick.agent.agent, &pick.model), text);
        }
    }
    let current = catalog
        .default_value()
        .expect("a catalog with models has a default");
    let option = catalog.model_option(&current);
    assert_eq!(option["currentValue"], Value::from(current.as_str()));
    let _ = catalog.legacy_models(&current);
    if let Some(options) = value.get("configOptions").and_then(Value::as_array) {
        let kept = agent_options_without_model(options, &alpha.selector);
        let all = catalog.config_options(&current, &kept);
        assert_eq!(all[0]["id"], "model", "the picker comes first");
        assert_eq!(
            all.iter().filter(|o| o["category"] == "model").count(),
            1,
            "one model selector"
        );
    }
});
