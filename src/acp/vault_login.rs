//! Logging in from the editor through the host's vault (ACP terminal auth).
//!
//! An agent in a container cannot run a login in the editor's terminal, and its credential
//! should not live in the container anyway. So for each agent whose provider the vault routes,
//! `initialize` offers a terminal login `<agent>:vault-login` to clients that can run one. The
//! editor runs its own agent command again with the method's arguments:
//! `terok-executor acp connect <container> vault-login <agent>` runs the host-side `auth` flow
//! in the editor's terminal and then sends the daemon [`VAULT_LOGIN_METHOD`]. The daemon asks its
//! [`VaultAccess`] for the container's fresh token variables, gives them to every wrapper started
//! from then on, and probes the agent again, so the pickers of open sessions show it.
//!
//! Clients that advertise `auth.terminal` get the stable form (`type: "terminal"` with `args`);
//! clients that only know the older `_meta.terminal-auth` get that form, which names the whole
//! command. Others see no such method.

use std::sync::Arc;

use serde_json::{json, Value};

use super::runtime::AgentName;

/// The daemon request a finished host-side login sends: `{"agent": <name>}` → `{"agent",
/// "ready"}`.
pub const VAULT_LOGIN_METHOD: &str = "_terok/vault_login";
/// The word that makes `acp connect` log in instead of bridging, and the method id's suffix.
pub const VAULT_LOGIN: &str = "vault-login";

/// What the daemon needs of the host's vault.
pub trait VaultAccess: Send + Sync + 'static {
    /// The agents whose provider the vault routes, each with its provider's name.
    fn routed(&self) -> Vec<(AgentName, String)>;
    /// The container's token variables as the vault holds credentials now (tokens are minted
    /// for every routed provider with a credential).
    fn token_env(&self) -> Result<Vec<(String, String)>, String>;
    /// The command an editor runs for this daemon (`terok-executor acp connect ...`), for
    /// clients that need it spelled out.
    fn connect_command(&self) -> Vec<String>;
}

/// A daemon's vault, as its configuration holds it.
#[derive(Clone)]
pub struct VaultHandle(pub Arc<dyn VaultAccess>);

impl std::fmt::Debug for VaultHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultHandle")
    }
}

/// The method id of `agent`'s vault login.
pub fn method_id(agent: &AgentName) -> String {
    format!("{agent}:{VAULT_LOGIN}")
}

/// The agent a method id names, when it is a vault login.
pub fn agent_of(method_id: &str) -> Option<&str> {
    method_id
        .strip_suffix(VAULT_LOGIN)
        .and_then(|a| a.strip_suffix(':'))
}

/// The vault logins for `agents` (name and title), in the form `client_caps` supports.
pub fn methods(
    vault: &dyn VaultAccess,
    agents: &[(AgentName, String)],
    client_caps: &Value,
) -> Vec<Value> {
    let stable = client_caps.pointer("/auth/terminal") == Some(&Value::Bool(true));
    let legacy = client_caps.pointer("/_meta/terminal-auth") == Some(&Value::Bool(true));
    if !stable && !legacy {
        return Vec::new();
    }
    let routed = vault.routed();
    let command = vault.connect_command();
    let mut out = Vec::new();
    for (agent, title) in agents {
        let Some((_, provider)) = routed.iter().find(|(a, _)| a == agent) else {
            continue;
        };
        let args = vec![VAULT_LOGIN.to_owned(), agent.to_string()];
        let mut method = json!({
            "id": method_id(agent),
            "name": format!("{title}: log in through the terok vault"),
            "description": format!(
                "Stores your {provider} API key in the host's encrypted vault; the agent gets a \
                 token that only the vault turns into the key."
            ),
        });
        if stable {
            method["type"] = json!("terminal");
            method["args"] = json!(args);
        } else if let Some((program, base)) = command.split_first() {
            let mut all = base.to_vec();
            all.extend(args);
            method["_meta"] = json!({"terminal-auth": {
                "command": program,
                "args": all,
                "label": format!("{title} vault login"),
            }});
        }
        out.push(method);
    }
    out
}

/// The agent named by `acp connect`'s extra arguments when they ask for a vault login.
pub fn login_request(extra: &[String]) -> Option<Result<AgentName, String>> {
    match extra {
        [word, agent] if word == VAULT_LOGIN => {
            Some(AgentName::new(agent).map_err(|e| e.to_string()))
        }
        [word, ..] if word == VAULT_LOGIN => Some(Err(format!(
            "usage: acp connect <container> {VAULT_LOGIN} <agent>"
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl VaultAccess for Fake {
        fn routed(&self) -> Vec<(AgentName, String)> {
            vec![(AgentName::new("claude").unwrap(), "anthropic".into())]
        }
        fn token_env(&self) -> Result<Vec<(String, String)>, String> {
            Ok(Vec::new())
        }
        fn connect_command(&self) -> Vec<String> {
            ["/bin/terok-executor", "acp", "connect", "ctr"]
                .map(String::from)
                .to_vec()
        }
    }

    fn agents() -> Vec<(AgentName, String)> {
        vec![
            (AgentName::new("claude").unwrap(), "Claude".into()),
            (AgentName::new("fixture").unwrap(), "Fixture".into()),
        ]
    }

    #[test]
    fn terminal_clients_get_the_stable_form_for_routed_agents_only() {
        let got = methods(&Fake, &agents(), &json!({"auth": {"terminal": true}}));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["id"], "claude:vault-login");
        assert_eq!(got[0]["type"], "terminal");
        assert_eq!(got[0]["args"], json!(["vault-login", "claude"]));
        assert!(got[0]["description"]
            .as_str()
            .unwrap()
            .contains("anthropic"));
        assert!(got[0].get("_meta").is_none());
    }

    #[test]
    fn older_clients_get_the_whole_command_and_others_nothing() {
        let got = methods(&Fake, &agents(), &json!({"_meta": {"terminal-auth": true}}));
        assert_eq!(got[0].get("type"), None);
        assert_eq!(
            got[0]["_meta"]["terminal-auth"],
            json!({"command": "/bin/terok-executor", "args": ["acp", "connect", "ctr", "vault-login", "claude"],
                   "label": "Claude vault login"})
        );
        assert!(methods(&Fake, &agents(), &json!({"fs": {"readTextFile": true}})).is_empty());
        assert!(methods(&Fake, &agents(), &json!({"auth": {"terminal": false}})).is_empty());
    }

    #[test]
    fn ids_and_connect_arguments_round_trip() {
        let claude = AgentName::new("claude").unwrap();
        assert_eq!(agent_of(&method_id(&claude)), Some("claude"));
        assert_eq!(agent_of("claude:login"), None);
        assert_eq!(agent_of("vault-login"), None);
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            login_request(&args(&["vault-login", "claude"])),
            Some(Ok(claude))
        );
        assert!(matches!(
            login_request(&args(&["vault-login"])),
            Some(Err(_))
        ));
        assert!(matches!(
            login_request(&args(&["vault-login", "Bad:Name"])),
            Some(Err(_))
        ));
        assert_eq!(login_request(&args(&["--login"])), None);
        assert_eq!(login_request(&[]), None);
    }
}
