//! The container description of one launch: name, labels, command, environment, mounts and
//! hardening, turned into the API's create body. Pure: nothing here talks to the engine.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use indexmap::IndexMap;

use super::hardening::Hardening;
use super::headless::HeadlessOptions;
use crate::launcher::env::{Volume, CONTAINER_WORKSPACE};
use crate::launcher::roster::AgentProvider;

/// Label on every container this tool starts; `list` and `stop` filter on it.
pub const LABEL_MANAGED: &str = "ai.terok.executor";
/// The agent a container was started for.
pub const LABEL_AGENT: &str = "ai.terok.executor.agent";
/// How it was started (`headless`, `interactive`, `acp`).
pub const LABEL_MODE: &str = "ai.terok.executor.mode";
/// Prefix of generated container names.
pub const NAME_PREFIX: &str = "terok-executor-";
/// The line an interactive container prints once it is ready.
pub const READY_MARKER: &str = "__CLI_READY__";

/// How the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs the agent on a prompt; the launcher follows its output and returns its exit code.
    Headless,
    /// Keeps the container up for `podman exec` sessions.
    Interactive,
    /// Keeps the container up and serves its agents over ACP.
    Acp,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Headless => "headless",
            Mode::Interactive => "interactive",
            Mode::Acp => "acp",
        }
    }
}

pub use crate::shell::quote as shell_quote;

/// The container command: `bash -lc "init-ssh-and-repo.sh && …"`.
pub fn command(mode: Mode, agent: &AgentProvider, headless: &HeadlessOptions) -> Vec<String> {
    let script = match mode {
        Mode::Headless => format!(
            "init-ssh-and-repo.sh && {}",
            super::headless::line(agent, headless).0
        ),
        Mode::Interactive | Mode::Acp => {
            format!("init-ssh-and-repo.sh && echo {READY_MARKER}; tail -f /dev/null")
        }
    };
    vec!["bash".into(), "-lc".into(), script]
}

/// Everything about one container.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub name: String,
    pub image: String,
    pub agent: String,
    pub mode: Mode,
    pub command: Vec<String>,
    pub env: IndexMap<String, String>,
    pub volumes: Vec<Volume>,
    pub hardening: Hardening,
    /// No bind mounts: `volumes` are copied in instead, the workspace on its own volume.
    pub sealed: bool,
}

impl LaunchSpec {
    /// The labels `list` and `stop` rely on.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_owned(), "1".to_owned()),
            (LABEL_AGENT.to_owned(), self.agent.clone()),
            (LABEL_MODE.to_owned(), self.mode.as_str().to_owned()),
        ])
    }

    /// The API's create body.
    pub fn create_body(&self) -> ContainerCreateBody {
        let mut host = HostConfig {
            binds: (!self.sealed).then(|| self.volumes.iter().map(Volume::to_mount_arg).collect()),
            ..Default::default()
        };
        self.hardening.apply(&mut host);
        if self.sealed {
            super::sealed::add_workspace_volume(&mut host);
        }
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(self.command.clone()),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(self.labels()),
            hostname: Some(self.name.clone()),
            working_dir: Some(CONTAINER_WORKSPACE.to_owned()),
            host_config: Some(host),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::roster::load_roster;

    fn provider(name: &str) -> AgentProvider {
        load_roster(None).unwrap().providers()[name].clone()
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("plain-word_1.0"), "plain-word_1.0");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn interactive_and_acp_stay_up() {
        let cmd = command(Mode::Acp, &provider("claude"), &HeadlessOptions::default());
        assert_eq!(cmd[..2], ["bash", "-lc"]);
        assert_eq!(
            cmd[2],
            "init-ssh-and-repo.sh && echo __CLI_READY__; tail -f /dev/null"
        );
    }

    #[test]
    fn create_body_carries_labels_mounts_and_hardening() {
        let spec = LaunchSpec {
            name: "terok-executor-abc".into(),
            image: "img".into(),
            agent: "claude".into(),
            mode: Mode::Interactive,
            command: vec!["true".into()],
            env: IndexMap::from([("A".to_string(), "1".to_string())]),
            volumes: vec![Volume::new(
                "/w",
                "/workspace",
                crate::launcher::env::Sharing::Private,
            )],
            hardening: Hardening::restricted(false),
            sealed: false,
        };
        let body = spec.create_body();
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_MANAGED], "1");
        assert_eq!(labels[LABEL_AGENT], "claude");
        assert_eq!(labels[LABEL_MODE], "interactive");
        assert_eq!(body.env.unwrap(), ["A=1"]);
        let host = body.host_config.unwrap();
        assert_eq!(host.binds.unwrap(), ["/w:/workspace:Z"]);
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(body.working_dir.as_deref(), Some("/workspace"));

        let sealed = LaunchSpec {
            sealed: true,
            ..spec
        }
        .create_body();
        let host = sealed.host_config.unwrap();
        assert_eq!(host.binds, None, "no bind mounts");
        let targets: Vec<_> = host
            .mounts
            .unwrap()
            .into_iter()
            .filter_map(|m| m.target)
            .collect();
        assert_eq!(targets, ["/home/dev", "/workspace"]);
    }
}
