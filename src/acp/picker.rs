//! The aggregated model picker: every agent's models as `agent:model`.
//!
//! A [`Catalog`] is the set of agents that answered their probes, sorted by name. It renders the
//! picker as a `configOptions` select (id `model`, category `model`, options grouped per agent)
//! and as the legacy `models` block, and resolves a picked value back to an agent and the bare
//! model id that agent knows. Values split at the first `:`, so model ids that contain `:`
//! themselves survive.

use std::sync::Arc;

use serde_json::{json, Value};

use super::models::{is_model_option, ModelSelector};
use super::probe::AgentProbe;
use super::runtime::AgentName;

/// The config option id of the aggregated picker.
pub const MODEL_OPTION_ID: &str = "model";

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    agents: Vec<Arc<AgentProbe>>,
    /// Agents whose probe answered "authentication required", with their auth methods.
    auth_needed: Vec<AuthNeeded>,
}

/// An agent that needs a login before it can open sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthNeeded {
    pub agent: AgentName,
    pub methods: Vec<Value>,
}

/// A picked value resolved to its agent.
#[derive(Debug, Clone)]
pub struct Pick {
    pub agent: Arc<AgentProbe>,
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    #[error("model {0:?} is not of the form agent:model")]
    Malformed(String),
    #[error("no agent named {0:?} is available in this container")]
    UnknownAgent(String),
    #[error("agent {agent} offers no model {model:?}")]
    UnknownModel { agent: String, model: String },
}

/// `agent:model`
pub fn namespaced(agent: &AgentName, model: &str) -> String {
    format!("{agent}:{model}")
}

impl Catalog {
    pub fn new(agents: Vec<Arc<AgentProbe>>) -> Catalog {
        Catalog::with_auth(agents, Vec::new())
    }

    pub fn with_auth(
        mut agents: Vec<Arc<AgentProbe>>,
        mut auth_needed: Vec<AuthNeeded>,
    ) -> Catalog {
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        agents.dedup_by(|a, b| a.agent == b.agent);
        auth_needed.sort_by(|a, b| a.agent.cmp(&b.agent));
        Catalog {
            agents,
            auth_needed,
        }
    }

    pub fn auth_needed(&self) -> &[AuthNeeded] {
        &self.auth_needed
    }

    /// Every value the picker offers, in order: two catalogs with the same values show the
    /// same picker.
    pub fn values(&self) -> Vec<String> {
        self.agents
            .iter()
            .flat_map(|a| {
                a.menu
                    .models
                    .iter()
                    .map(move |m| namespaced(&a.agent, &m.id))
            })
            .collect()
    }

    /// Every agent, usable or waiting for a login, with the title it shows under.
    pub fn agent_titles(&self) -> Vec<(AgentName, String)> {
        self.agents
            .iter()
            .map(|a| (a.agent.clone(), a.title()))
            .chain(
                self.auth_needed
                    .iter()
                    .map(|a| (a.agent.clone(), a.agent.to_string())),
            )
            .collect()
    }

    /// Every agent's auth methods as `agent:methodId`, for a client with `client_caps` (its
    /// `clientCapabilities`). Agents are initialized with the capabilities editors send, so
    /// they list methods only some clients can use; each client gets those it advertised
    /// support for: a gateway method (`_meta.gateway`) needs `auth._meta.gateway`. Terminal
    /// logins (type `terminal`, or the older `_meta.terminal-auth` form) are left out: an
    /// editor runs them on its own machine, by re-running the agent command with extra
    /// arguments or by running the named command, and neither reaches an agent in a container.
    pub fn auth_methods(&self, client_caps: &Value) -> Vec<Value> {
        let gateway = client_caps.pointer("/auth/_meta/gateway") == Some(&Value::Bool(true));
        let ready = self.agents.iter().map(|a| {
            let methods = a
                .initialize
                .get("authMethods")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            (a.agent.clone(), a.title(), methods)
        });
        let locked = self
            .auth_needed
            .iter()
            .map(|a| (a.agent.clone(), a.agent.to_string(), a.methods.clone()));
        let mut out = Vec::new();
        for (agent, title, methods) in ready.chain(locked) {
            for method in methods {
                let Some(id) = method.get("id").and_then(Value::as_str) else {
                    continue;
                };
                let meta = method.get("_meta");
                let terminal = method.get("type").and_then(Value::as_str) == Some("terminal")
                    || meta.is_some_and(|m| m.get("terminal-auth").is_some());
                let needs_gateway = meta.is_some_and(|m| m.get("gateway").is_some());
                if terminal || (needs_gateway && !gateway) {
                    continue;
                }
                let mut method = method.clone();
                method["id"] = json!(namespaced(&agent, id));
                let name = method
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(id)
                    .to_owned();
                method["name"] = json!(format!("{title}: {name}"));
                out.push(method);
            }
        }
        out
    }

    /// Resolves an `agent:methodId` auth method to its agent and bare id.
    pub fn resolve_auth(&self, id: &str) -> Option<(AgentName, String)> {
        let (agent, method) = id.split_once(':')?;
        let known = self
            .agents
            .iter()
            .map(|a| &a.agent)
            .chain(self.auth_needed.iter().map(|a| &a.agent));
        let agent = known.into_iter().find(|a| a.as_str() == agent)?.clone();
        Some((agent, method.to_owned()))
    }

    /// The merged `agentCapabilities`: what at least one agent can do. Requests a bound agent
    /// cannot serve are refused per session.
    pub fn capabilities(&self) -> Value {
        let caps: Vec<&Value> = self
            .agents
            .iter()
            .filter_map(|a| a.initialize.get("agentCapabilities"))
            .collect();
        let any = |path: &str| {
            caps.iter()
                .any(|c| c.pointer(path).and_then(Value::as_bool) == Some(true))
        };
        let has = |path: &str| {
            caps.iter()
                .any(|c| c.pointer(path).is_some_and(|v| !v.is_null()))
        };
        let mut session = serde_json::Map::new();
        for capability in ["additionalDirectories", "list", "resume", "close", "delete"] {
            if has(&format!("/sessionCapabilities/{capability}")) {
                session.insert(capability.into(), json!({}));
            }
        }
        json!({
            "loadSession": any("/loadSession"),
            "promptCapabilities": {
                "image": any("/promptCapabilities/image"),
                "audio": any("/promptCapabilities/audio"),
                "embeddedContext": any("/promptCapabilities/embeddedContext"),
            },
            "mcpCapabilities": {"http": any("/mcpCapabilities/http"), "sse": any("/mcpCapabilities/sse")},
            "sessionCapabilities": session,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn agents(&self) -> &[Arc<AgentProbe>] {
        &self.agents
    }

    pub fn agent(&self, name: &str) -> Option<&Arc<AgentProbe>> {
        self.agents.iter().find(|a| a.agent.as_str() == name)
    }

    /// The picker's default: the first model of the first agent.
    pub fn default_value(&self) -> Option<String> {
        let first = self.agents.first()?;
        let model = first.menu.models.first()?;
        Some(namespaced(&first.agent, &model.id))
    }

    /// Resolves a picked `agent:model` value.
    pub fn resolve(&self, value: &str) -> Result<Pick, PickError> {
        let (agent, model) = value
            .split_once(':')
            .ok_or_else(|| PickError::Malformed(value.into()))?;
        let probe = self
            .agent(agent)
            .ok_or_else(|| PickError::UnknownAgent(agent.into()))?;
        if !probe.menu.contains(model) {
            return Err(PickError::UnknownModel {
                agent: agent.into(),
                model: model.into(),
            });
        }
        Ok(Pick {
            agent: probe.clone(),
            model: model.into(),
        })
    }

    /// The picker as a `configOptions` select, options grouped per agent.
    pub fn model_option(&self, current: &str) -> Value {
        let groups: Vec<Value> = self
            .agents
            .iter()
            .map(|agent| {
                let options: Vec<Value> = agent
                    .menu
                    .models
                    .iter()
                    .map(|m| {
                        let mut option =
                            json!({"value": namespaced(&agent.agent, &m.id), "name": m.name});
                        if let Some(description) = &m.description {
                            option["description"] = json!(description);
                        }
                        option
                    })
                    .collect();
                json!({"group": agent.agent.as_str(), "name": agent.title(), "options": options})
            })
            .collect();
        json!({
            "id": MODEL_OPTION_ID,
            "name": "Model",
            "description": "Agent and model; picking another agent's model starts that agent",
            "category": "model",
            "type": "select",
            "currentValue": current,
            "options": groups,
        })
    }

    /// The legacy `models` block for clients that predate config options.
    pub fn legacy_models(&self, current: &str) -> Value {
        let models: Vec<Value> = self
            .agents
            .iter()
            .flat_map(|agent| {
                agent.menu.models.iter().map(move |m| {
                    json!({
                        "modelId": namespaced(&agent.agent, &m.id),
                        "name": format!("{}: {}", agent.title(), m.name),
                        "description": m.description,
                    })
                })
            })
            .collect();
        json!({"currentModelId": current, "availableModels": models})
    }

    /// The complete option list for a session: the picker first, then the bound agent's own
    /// options (mode, thought level, ...) with its model selector left out.
    pub fn config_options(&self, current: &str, agent_options: &[Value]) -> Vec<Value> {
        let mut options = vec![self.model_option(current)];
        options.extend(
            agent_options
                .iter()
                .filter(|o| !is_model_option(o))
                .cloned(),
        );
        options
    }
}

/// The agent's own options without its model selector (found by category or by `selector`'s id).
pub fn agent_options_without_model(options: &[Value], selector: &ModelSelector) -> Vec<Value> {
    options
        .iter()
        .filter(|o| {
            let is_selector = matches!(selector, ModelSelector::ConfigOption { id } if o.get("id").and_then(Value::as_str) == Some(id));
            !is_model_option(o) && !is_selector
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acp::models::ModelMenu;

    fn probe(agent: &str, session: Value) -> Arc<AgentProbe> {
        Arc::new(AgentProbe {
            agent: AgentName::new(agent).unwrap(),
            initialize: json!({"agentInfo": {"name": agent, "title": agent.to_uppercase()}}),
            menu: ModelMenu::from_session(&session),
            modes: None,
        })
    }

    fn catalog() -> Catalog {
        Catalog::new(vec![
            probe(
                "codex",
                json!({"models":{"currentModelId":"gpt-5","availableModels":[{"modelId":"gpt-5","name":"GPT-5"},{"modelId":"o:3","name":"O3"}]}}),
            ),
            probe(
                "claude",
                json!({"configOptions":[{"id":"model","category":"model","type":"select","currentValue":"opus","options":[{"value":"opus","name":"Opus","description":"big"},{"value":"sonnet[1m]","name":"Sonnet"}]}]}),
            ),
            probe("plain", json!({})),
        ])
    }

    #[test]
    fn agents_sorted_and_default_is_first_model_of_first_agent() {
        let c = catalog();
        let names: Vec<&str> = c.agents().iter().map(|a| a.agent.as_str()).collect();
        assert_eq!(names, ["claude", "codex", "plain"]);
        assert_eq!(c.default_value().unwrap(), "claude:opus");
    }

    #[test]
    fn resolve_splits_at_first_colon() {
        let c = catalog();
        let pick = c.resolve("codex:o:3").unwrap();
        assert_eq!(
            (pick.agent.agent.as_str(), pick.model.as_str()),
            ("codex", "o:3")
        );
        assert_eq!(c.resolve("plain:default").unwrap().model, "default");
    }

    #[test]
    fn resolve_errors_name_the_problem() {
        let c = catalog();
        assert_eq!(
            c.resolve("opus").unwrap_err(),
            PickError::Malformed("opus".into())
        );
        assert_eq!(
            c.resolve("ghost:x").unwrap_err(),
            PickError::UnknownAgent("ghost".into())
        );
        assert!(matches!(
            c.resolve("claude:haiku").unwrap_err(),
            PickError::UnknownModel { .. }
        ));
        assert!(matches!(
            c.resolve("claude;rm -rf /:x").unwrap_err(),
            PickError::UnknownAgent(_)
        ));
    }

    #[test]
    fn picker_is_grouped_per_agent() {
        let option = catalog().model_option("codex:gpt-5");
        assert_eq!(option["id"], "model");
        assert_eq!(option["category"], "model");
        assert_eq!(option["currentValue"], "codex:gpt-5");
        let groups = option["options"].as_array().unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0]["group"], "claude");
        assert_eq!(groups[0]["name"], "CLAUDE");
        assert_eq!(groups[0]["options"][1]["value"], "claude:sonnet[1m]");
        assert_eq!(groups[0]["options"][0]["description"], "big");
        assert_eq!(groups[2]["options"][0]["value"], "plain:default");
    }

    #[test]
    fn legacy_block_lists_every_model_flat() {
        let block = catalog().legacy_models("claude:opus");
        let ids: Vec<&str> = block["availableModels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["modelId"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "claude:opus",
                "claude:sonnet[1m]",
                "codex:gpt-5",
                "codex:o:3",
                "plain:default"
            ]
        );
    }

    #[test]
    fn capabilities_are_the_union_of_the_agents() {
        let with = |caps: Value| {
            Arc::new(AgentProbe {
                agent: AgentName::new(&format!("a{}", caps.to_string().len())).unwrap(),
                initialize: json!({"agentCapabilities": caps}),
                menu: ModelMenu::from_session(&json!({})),
                modes: None,
            })
        };
        let c = Catalog::new(vec![
            with(
                json!({"promptCapabilities": {"image": true}, "mcpCapabilities": {"http": false}}),
            ),
            with(
                json!({"promptCapabilities": {"embeddedContext": true, "image": false}, "mcpCapabilities": {"sse": true}, "sessionCapabilities": {"additionalDirectories": {}}}),
            ),
        ]);
        let caps = c.capabilities();
        assert_eq!(
            caps["promptCapabilities"],
            json!({"image": true, "audio": false, "embeddedContext": true})
        );
        assert_eq!(caps["mcpCapabilities"], json!({"http": false, "sse": true}));
        assert_eq!(
            caps["sessionCapabilities"],
            json!({"additionalDirectories": {}})
        );
    }

    #[test]
    fn auth_methods_are_namespaced_and_terminal_ones_left_out() {
        let probe = Arc::new(AgentProbe {
            agent: AgentName::new("codex").unwrap(),
            initialize: json!({"agentInfo": {"title": "Codex"}, "authMethods": [
                {"id": "chatgpt", "name": "Login with ChatGPT"},
                {"id": "key", "name": "API key", "type": "env_var", "vars": [{"name": "K"}]},
                {"id": "tty", "name": "Terminal", "type": "terminal", "args": ["--login"]},
                {"id": "old-tty", "name": "Login", "_meta": {"terminal-auth": {"command": "/x", "args": ["login"]}}},
                {"id": "gw", "name": "Gateway", "_meta": {"gateway": {"protocol": "anthropic"}}}]}),
            menu: ModelMenu::from_session(&json!({})),
            modes: None,
        });
        let c = Catalog::with_auth(
            vec![probe],
            vec![AuthNeeded {
                agent: AgentName::new("claude").unwrap(),
                methods: vec![json!({"id": "login", "name": "Log in"})],
            }],
        );
        let ids = |caps: Value| -> Vec<String> {
            c.auth_methods(&caps)
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            ids(json!({})),
            ["codex:chatgpt", "codex:key", "claude:login"]
        );
        assert_eq!(
            ids(json!({"auth": {"terminal": true, "_meta": {"gateway": true}}})),
            ["codex:chatgpt", "codex:key", "codex:gw", "claude:login"],
            "a gateway method for a client that takes one; terminal logins never"
        );
        let methods = c.auth_methods(&json!({}));
        assert_eq!(methods[0]["name"], "Codex: Login with ChatGPT");
        assert_eq!(
            methods[1]["vars"],
            json!([{"name": "K"}]),
            "other fields pass through"
        );
        assert_eq!(
            c.resolve_auth("claude:login"),
            Some((AgentName::new("claude").unwrap(), "login".into()))
        );
        assert_eq!(c.resolve_auth("ghost:login"), None);
        assert_eq!(c.resolve_auth("login"), None);
    }

    #[test]
    fn complete_list_replaces_the_agents_model_option() {
        let agent_options = vec![
            json!({"id":"mode","category":"mode","type":"select","currentValue":"ask","options":[]}),
            json!({"id":"model","category":"model","type":"select","currentValue":"opus","options":[]}),
        ];
        let options = catalog().config_options("claude:opus", &agent_options);
        assert_eq!(options.len(), 2);
        assert_eq!(options[0]["currentValue"], "claude:opus");
        assert_eq!(options[1]["id"], "mode");
    }
}
