//! The container's checks, through the API and exec: it runs, its vault variables, its vault
//! bridge, its ACP wrappers.

use std::collections::BTreeMap;

use super::check::{Check, Verdict};
use crate::launcher::paths::{HostPaths, LayeredConfig};
use crate::launcher::roster::Roster;
use crate::launcher::vault::resolve_vault_location;

/// What the container's environment says about the vault, against what it should say.
pub fn env_check(env: &BTreeMap<String, String>, paths: &HostPaths, roster: &Roster) -> Check {
    let config = LayeredConfig::load(&paths.config_files);
    let Ok(location) = resolve_vault_location(&config) else {
        return Check::new(
            "vault-env",
            Verdict::Fail,
            "the vault location is not configured",
        )
        .fix("set vault.port (TCP mode) or services.mode: socket");
    };
    let mut wrong = Vec::new();
    let mut tokens = 0;
    for route in roster.vault_routes().values() {
        let phantoms = route
            .phantom_env
            .iter()
            .chain(route.oauth_phantom_env.iter());
        for (var, _) in phantoms {
            if let Some(value) = env.get(var) {
                if value.starts_with("terok-p-") {
                    tokens += 1;
                } else {
                    wrong.push(format!("{var} is not a phantom token"));
                }
            }
        }
        if let Some(url) = env
            .get(&route.base_url_env)
            .filter(|_| !route.base_url_env.is_empty())
        {
            if *url != location.url {
                wrong.push(format!(
                    "{} is {url}, not {}",
                    route.base_url_env, location.url
                ));
            }
        }
    }
    if !wrong.is_empty() {
        return Check::new("vault-env", Verdict::Fail, wrong.join("; "))
            .fix("start the container again with `terok-executor run` (its environment is fixed at creation)");
    }
    if tokens == 0 {
        return Check::new(
            "vault-env",
            Verdict::Skip,
            "the container has no vault tokens",
        );
    }
    Check::new(
        "vault-env",
        Verdict::Ok,
        format!(
            "{tokens} phantom token variables, base URLs at {}",
            location.url
        ),
    )
}

/// The checks of container `name`, through the API and exec.
pub async fn container_checks(
    docker: &bollard::Docker,
    name: &str,
    paths: &HostPaths,
    roster: &Roster,
) -> Vec<Check> {
    use crate::acp::runtime::podman::exec_output;
    let inspect = match docker.inspect_container(name, None).await {
        Ok(inspect) => inspect,
        Err(e) if crate::podman::is_not_found(&e) => {
            return vec![Check::new(
                "container",
                Verdict::Fail,
                format!("no container named {name}"),
            )
            .fix("see `terok-executor list`")]
        }
        Err(e) => {
            return vec![Check::new(
                "container",
                Verdict::Fail,
                format!("cannot inspect {name}: {e}"),
            )]
        }
    };
    let labels = inspect
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let running = inspect.state.as_ref().and_then(|s| s.running) == Some(true);
    let mut checks = Vec::new();
    if !running {
        checks.push(
            Check::new("container", Verdict::Fail, format!("{name} is not running")).fix(format!(
                "start it again: `terok-executor stop {name}`, then `terok-executor run`"
            )),
        );
        return checks;
    }
    let ours = labels
        .get(crate::container::spec::LABEL_MANAGED)
        .map(String::as_str)
        == Some("1");
    checks.push(if ours {
        Check::new("container", Verdict::Ok, format!("{name} runs"))
    } else {
        Check::new(
            "container",
            Verdict::Warn,
            format!("{name} runs but was not started by terok-executor"),
        )
    });

    let sh = |script: &str| vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()];
    let env: BTreeMap<String, String> = match exec_output(docker, name, sh("env")).await {
        Ok((out, _)) => out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(e) => {
            checks.push(Check::new(
                "exec",
                Verdict::Fail,
                format!("cannot run a command in {name}: {e}"),
            ));
            return checks;
        }
    };
    checks.push(env_check(&env, paths, roster));

    checks.push(match env.get("TEROK_VAULT_LOOPBACK_PORT") {
        None => Check::new("vault-bridge", Verdict::Skip, "the container has no vault bridge"),
        Some(port) => {
            let probe = format!(
                "command -v curl >/dev/null || {{ echo no-curl; exit 0; }}; \
                 curl -s -m 5 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/-/health || true"
            );
            match exec_output(docker, name, sh(&probe)).await {
                Ok((out, _)) if out.trim() == "200" => {
                    Check::new("vault-bridge", Verdict::Ok, format!("127.0.0.1:{port} reaches the broker"))
                }
                Ok((out, _)) if out.trim() == "no-curl" => {
                    Check::new("vault-bridge", Verdict::Skip, "no curl in the image to ask with")
                }
                Ok((out, _)) => Check::new(
                    "vault-bridge",
                    Verdict::Fail,
                    format!("127.0.0.1:{port} answered {:?} instead of the broker's health", out.trim()),
                )
                .fix(format!(
                    "the container's broker is down (its log: {}); start the container again",
                    paths.state_dir.join("vault-broker/logs").join(format!("{name}.log")).display()
                )),
                Err(e) => Check::new("vault-bridge", Verdict::Fail, e.to_string()),
            }
        }
    });

    let labelled: Vec<String> = labels
        .get("ai.terok.agents")
        .map(|l| {
            l.split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // The agents whose install puts a wrapper in the image (native tools and test entries
    // have none).
    let ships_wrapper = |agent: &str| {
        roster.installs().get(agent).is_some_and(|i| {
            let wrapper = format!("terok-{agent}-acp");
            i.run_as_root.contains(&wrapper) || i.run_as_dev.contains(&wrapper)
        })
    };
    let agents: Vec<&String> = labelled
        .iter()
        .filter(|a| ships_wrapper(a) && crate::acp::runtime::AgentName::new(a).is_ok())
        .collect();
    if agents.is_empty() {
        checks.push(Check::new(
            "wrappers",
            Verdict::Skip,
            "the image names no agent that ships an ACP wrapper",
        ));
        return checks;
    }
    let mut cmd =
        sh(r#"for a do command -v "terok-$a-acp" >/dev/null 2>&1 || echo "$a"; done; true"#);
    cmd.push("sh".into());
    cmd.extend(agents.iter().map(|a| a.to_string()));
    checks.push(match exec_output(docker, name, cmd).await {
        Ok((out, _)) if out.trim().is_empty() => Check::new(
            "wrappers",
            Verdict::Ok,
            format!(
                "an ACP wrapper for each of {}",
                agents
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Ok((out, _)) => Check::new(
            "wrappers",
            Verdict::Fail,
            format!(
                "the image label names {} but ships no wrapper for it",
                out.split_whitespace().collect::<Vec<_>>().join(", ")
            ),
        )
        .fix("build the image again (`terok-executor build --rebuild`)"),
        Err(e) => Check::new("wrappers", Verdict::Fail, e.to_string()),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::doctor::check::render;
    use crate::launcher::paths::temp_host_paths as paths;

    #[test]
    fn a_real_key_in_the_environment_fails_the_env_check() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths(dir.path());
        let roster = crate::launcher::roster::load_roster(None).unwrap();
        let mut env = BTreeMap::from([
            (
                "ANTHROPIC_API_KEY".to_owned(),
                format!("terok-p-{}", "a".repeat(32)),
            ),
            (
                "ANTHROPIC_BASE_URL".to_owned(),
                "http://localhost:9419".to_owned(),
            ),
        ]);
        assert_eq!(env_check(&env, &paths, &roster).verdict, Verdict::Ok);
        env.insert("ANTHROPIC_API_KEY".into(), "sk-ant-real".into());
        let check = env_check(&env, &paths, &roster);
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.detail.contains("ANTHROPIC_API_KEY"), "{check:?}");
        assert!(
            !check.detail.contains("sk-ant-real"),
            "never the secret: {check:?}"
        );
        env.clear();
        assert_eq!(env_check(&env, &paths, &roster).verdict, Verdict::Skip);
        let rendered = render(&[check]);
        assert!(
            rendered.starts_with("FAIL") && rendered.contains("fix: "),
            "{rendered}"
        );
    }
}
