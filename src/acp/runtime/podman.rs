//! The Podman runtime: agents in a running container, reached through Podman's API.
//!
//! Which agents exist: the image's `ai.terok.agents` label (comma-separated), narrowed by one
//! exec that checks which of them ship `terok-<agent>-acp` on the container's PATH (cached for
//! the daemon's lifetime; if that exec fails the label is trusted). A wrapper runs as an exec
//! with stdin, stdout and stderr attached; the API multiplexes stdout and stderr on one stream,
//! which a demultiplexing task splits: stdout feeds the NDJSON path, stderr only a bounded tail.
//! Killing the exec's client does not end the process inside the container, so every wrapper is
//! started as `sh -c 'echo terok-exec-pid:$$ >&2; exec terok-<agent>-acp'`: the first stderr
//! line names its pid (and process group) inside the container, and ending it is a second exec
//! that signals that group, SIGTERM first, SIGKILL after a grace period. The container is watched
//! through the events API (`die`, `stop`, `remove`), with a slow poll behind it in case events
//! are unavailable.

use std::collections::HashMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{EventsOptionsBuilder, InspectContainerOptions};
use bollard::Docker;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, OnceCell};
use tokio_util::task::TaskTracker;

use super::{
    AgentName, AgentProcess, ExitInfo, Identity, ProcessControl, Runtime, RuntimeError, StderrTail,
};

/// The label listing a container image's agents.
pub const AGENTS_LABEL: &str = "ai.terok.agents";
/// The working directory agents get in a container.
pub const WORKSPACE: &str = "/workspace";
/// How long a wrapper gets between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_millis(1500);
/// How long the wrapper check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Polling interval behind the events watch.
const LIVENESS_POLL: Duration = Duration::from_secs(5);
/// Marker of the pid line a wrapper writes first to stderr.
const PID_MARKER: &str = "terok-exec-pid:";
/// Buffer between the demultiplexer and the NDJSON reader.
const STDOUT_PIPE: usize = 256 * 1024;

pub struct PodmanRuntime {
    docker: Docker,
    /// The name (or id) the container was given by.
    container: String,
    id: String,
    image: String,
    agents: OnceCell<Vec<AgentName>>,
    /// Supervisors of started wrappers, so shutdown can wait until they are ended.
    supervisors: TaskTracker,
    env: super::ExtraEnv,
}

fn api_error(container: &str, e: bollard::errors::Error) -> RuntimeError {
    if crate::podman::is_not_found(&e) {
        RuntimeError::NotRunning(format!("{container} (no such container)"))
    } else {
        RuntimeError::Other(format!("podman: {e}"))
    }
}

impl PodmanRuntime {
    /// Connects to Podman and inspects `container`, which must be running.
    pub async fn connect(container: &str) -> Result<PodmanRuntime, RuntimeError> {
        let docker = crate::podman::connect()
            .await
            .map_err(|e| RuntimeError::Other(e.to_string()))?;
        PodmanRuntime::with_client(docker, container).await
    }

    pub async fn with_client(
        docker: Docker,
        container: &str,
    ) -> Result<PodmanRuntime, RuntimeError> {
        let info = docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(|e| api_error(container, e))?;
        let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        if !running {
            return Err(RuntimeError::NotRunning(container.to_owned()));
        }
        let id = info.id.unwrap_or_else(|| container.to_owned());
        let image = info.image.unwrap_or_default();
        Ok(PodmanRuntime {
            docker,
            container: container.to_owned(),
            id,
            image,
            agents: OnceCell::new(),
            supervisors: TaskTracker::new(),
            env: Default::default(),
        })
    }

    /// The agents the image's label lists, valid names only.
    pub async fn labelled_agents(&self) -> Result<Vec<AgentName>, RuntimeError> {
        let image = self
            .docker
            .inspect_image(&self.image)
            .await
            .map_err(|e| api_error(&self.image, e))?;
        let label = image
            .config
            .and_then(|c| c.labels)
            .and_then(|mut l| l.remove(AGENTS_LABEL))
            .unwrap_or_default();
        Ok(parse_agents_label(&label))
    }

    async fn find_agents(&self) -> Result<Vec<AgentName>, RuntimeError> {
        let labelled = self.labelled_agents().await?;
        if labelled.is_empty() {
            return Ok(labelled);
        }
        let mut cmd = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            r#"for a do command -v "terok-$a-acp" >/dev/null 2>&1 && echo "$a"; done; true"#
                .to_owned(),
            "sh".to_owned(),
        ];
        cmd.extend(labelled.iter().map(|a| a.to_string()));
        match tokio::time::timeout(CHECK_TIMEOUT, self.exec_output(cmd)).await {
            Ok(Ok((stdout, _))) => {
                let present: Vec<&str> = stdout.lines().map(str::trim).collect();
                let (found, missing): (Vec<AgentName>, Vec<AgentName>) = labelled
                    .into_iter()
                    .partition(|a| present.contains(&a.as_str()));
                for agent in &missing {
                    tracing::info!(agent = %agent, "labelled but ships no {}: left out", agent.wrapper());
                }
                Ok(found)
            }
            Ok(Err(e)) => {
                tracing::warn!("cannot check which wrappers exist ({e}); trusting the label");
                Ok(labelled)
            }
            Err(_) => {
                tracing::warn!("the wrapper check took over {CHECK_TIMEOUT:?}; trusting the label");
                Ok(labelled)
            }
        }
    }

    /// Runs a command in the container and collects its stdout and exit code.
    async fn exec_output(&self, cmd: Vec<String>) -> Result<(String, Option<i64>), RuntimeError> {
        exec_output(&self.docker, &self.id, cmd).await
    }

    async fn start(&self, agent: &AgentName) -> Result<AgentProcess, RuntimeError> {
        let spawn_err = |reason: String| RuntimeError::Spawn {
            agent: agent.clone(),
            reason,
        };
        let script = format!("echo \"{PID_MARKER}$$\" >&2; exec \"$0\"");
        let exec = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    env: Some(
                        self.env
                            .get()
                            .into_iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect(),
                    ),
                    cmd: Some(vec![
                        "sh".to_owned(),
                        "-c".to_owned(),
                        script,
                        agent.wrapper(),
                    ]),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match api_error(&self.container, e) {
                RuntimeError::Other(reason) => spawn_err(reason),
                other => other,
            })?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| spawn_err(e.to_string()))?;
        let StartExecResults::Attached { mut output, input } = started else {
            return Err(spawn_err("the exec started detached".into()));
        };

        let tail = StderrTail::default();
        let (stdout_reader, mut stdout_writer) = tokio::io::simplex(STDOUT_PIPE);
        let (pid_tx, pid_rx) = oneshot::channel::<i64>();
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        let tail_writer = tail.clone();
        let label = agent.clone();
        tokio::spawn(async move {
            let mut pid_tx = Some(pid_tx);
            let mut pending_stderr = Vec::new();
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        if stdout_writer.write_all(&message).await.is_err() {
                            break;
                        }
                    }
                    Ok(LogOutput::StdErr { message }) => {
                        let mut bytes: &[u8] = &message;
                        if pid_tx.is_some() {
                            pending_stderr.extend_from_slice(bytes);
                            let Some(end) = pending_stderr.iter().position(|b| *b == b'\n') else {
                                continue;
                            };
                            let first =
                                String::from_utf8_lossy(&pending_stderr[..end]).into_owned();
                            if let Some(pid) = first
                                .strip_prefix(PID_MARKER)
                                .and_then(|p| p.trim().parse().ok())
                            {
                                if let Some(tx) = pid_tx.take() {
                                    let _ = tx.send(pid);
                                }
                            }
                            pid_tx = None;
                            let rest = pending_stderr.split_off(end + 1);
                            pending_stderr = rest;
                            bytes = &pending_stderr;
                        }
                        tail_writer.push(bytes);
                        if tracing::enabled!(tracing::Level::DEBUG) {
                            for line in String::from_utf8_lossy(bytes).lines() {
                                tracing::debug!(agent = %label, "stderr: {line}");
                            }
                        }
                        pending_stderr.clear();
                    }
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(e) => {
                        tracing::debug!(agent = %label, "exec stream ended: {e}");
                        break;
                    }
                }
            }
            let _ = stdout_writer.shutdown().await;
            let _ = ended_tx.send(());
        });

        let (control, supervisor) = ProcessControl::pair();
        let docker = self.docker.clone();
        let (container, exec_id) = (self.id.clone(), exec.id.clone());
        self.supervisors.spawn(async move {
            let pid = supervisor.pid.clone();
            tokio::spawn(async move {
                if let Ok(p) = pid_rx.await {
                    let _ = pid.set(super::AgentPid::Container(p));
                }
            });
            let pid = supervisor.pid.clone();
            let mut ended_rx = ended_rx;
            let ended_by_itself = tokio::select! {
                _ = &mut ended_rx => true,
                _ = supervisor.terminate => false,
            };
            let known_pid = || match pid.get() {
                Some(super::AgentPid::Container(p)) => Some(*p),
                _ => None,
            };
            if !ended_by_itself {
                if let Some(pid) = known_pid() {
                    signal_group(&docker, &container, pid, "TERM").await;
                    if tokio::time::timeout(TERMINATE_GRACE, &mut ended_rx)
                        .await
                        .is_err()
                    {
                        signal_group(&docker, &container, pid, "KILL").await;
                        let _ = tokio::time::timeout(TERMINATE_GRACE, &mut ended_rx).await;
                    }
                } else {
                    tracing::warn!("cannot end an agent whose pid inside the container is unknown");
                }
            }
            // Whatever the wrapper left behind in its group goes with it.
            if let Some(pid) = known_pid() {
                signal_group(&docker, &container, pid, "KILL").await;
            }
            let status = match docker.inspect_exec(&exec_id).await {
                Ok(info) => match info.exit_code {
                    Some(code) if !info.running.unwrap_or(false) => ExitInfo::Code(code as i32),
                    _ => ExitInfo::Unknown,
                },
                Err(_) => ExitInfo::Unknown,
            };
            let _ = supervisor.exit.send(Some(status));
        });

        Ok(AgentProcess {
            stdin: Box::new(input),
            stdout: Box::new(stdout_reader),
            stderr: tail,
            control,
        })
    }

    async fn running(&self) -> bool {
        match self
            .docker
            .inspect_container(&self.id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => info.state.and_then(|s| s.running).unwrap_or(false),
            Err(e) if crate::podman::is_not_found(&e) => false,
            Err(e) => {
                tracing::warn!("cannot inspect {}: {e}", self.container);
                true
            }
        }
    }

    async fn watch_events(&self) {
        let mut filters = HashMap::new();
        filters.insert("container", vec![self.id.as_str()]);
        filters.insert("type", vec!["container"]);
        let mut events = self
            .docker
            .events(Some(EventsOptionsBuilder::new().filters(&filters).build()));
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    let action = event.action.unwrap_or_default();
                    // Podman reports "died" filters as action "die"; match actions here.
                    if matches!(
                        action.as_str(),
                        "die" | "died" | "stop" | "remove" | "cleanup"
                    ) {
                        tracing::debug!(action, "container event");
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!("events stream failed: {e}; polling instead");
                    break;
                }
            }
        }
        // Without events, the poll alone decides.
        std::future::pending::<()>().await
    }
}

/// Splits the `ai.terok.agents` label into valid agent names, in label order without repeats.
pub fn parse_agents_label(label: &str) -> Vec<AgentName> {
    let mut out: Vec<AgentName> = Vec::new();
    for name in label.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match AgentName::new(name) {
            Ok(agent) if !out.contains(&agent) => out.push(agent),
            Ok(_) => {}
            Err(e) => tracing::warn!("ignoring label entry: {e}"),
        }
    }
    out.sort();
    out
}

/// Runs `cmd` in `container`; its stdout and exit code.
pub(crate) async fn exec_output(
    docker: &Docker,
    container: &str,
    cmd: Vec<String>,
) -> Result<(String, Option<i64>), RuntimeError> {
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| api_error(container, e))?;
    let started = docker
        .start_exec(&exec.id, None::<StartExecOptions>)
        .await
        .map_err(|e| api_error(container, e))?;
    let mut stdout = String::new();
    if let StartExecResults::Attached { mut output, .. } = started {
        while let Some(Ok(item)) = output.next().await {
            if let LogOutput::StdOut { message } = item {
                stdout.push_str(&String::from_utf8_lossy(&message));
            }
        }
    }
    let code = docker
        .inspect_exec(&exec.id)
        .await
        .ok()
        .and_then(|i| i.exit_code);
    Ok((stdout, code))
}

/// Sends `signal` to the process group `pid` inside the container.
async fn signal_group(docker: &Docker, container: &str, pid: i64, signal: &str) {
    let cmd = vec!["kill".to_owned(), format!("-{signal}"), format!("-{pid}")];
    if let Err(e) = exec_output(docker, container, cmd).await {
        tracing::debug!("cannot signal process group {pid} in {container}: {e}");
    }
}

impl Runtime for PodmanRuntime {
    fn describe(&self) -> String {
        self.container.clone()
    }

    fn workspace(&self) -> String {
        WORKSPACE.to_owned()
    }

    fn container_workspace(&self) -> Option<String> {
        Some(WORKSPACE.to_owned())
    }

    fn agents(&self) -> BoxFuture<'_, Result<Vec<AgentName>, RuntimeError>> {
        async move {
            self.agents
                .get_or_try_init(|| self.find_agents())
                .await
                .cloned()
        }
        .boxed()
    }

    fn identity(&self) -> BoxFuture<'_, Result<Identity, RuntimeError>> {
        async move {
            Ok(Identity {
                image: self.image.clone(),
                auth: "global".into(),
            })
        }
        .boxed()
    }

    fn spawn(&self, agent: &AgentName) -> BoxFuture<'_, Result<AgentProcess, RuntimeError>> {
        let agent = agent.clone();
        async move { self.start(&agent).await }.boxed()
    }

    fn set_env(&self, env: Vec<(String, String)>) {
        self.env.set(env);
    }

    fn is_alive(&self) -> BoxFuture<'_, bool> {
        self.running().boxed()
    }

    fn stopped(&self) -> BoxFuture<'_, ()> {
        async move {
            let poll = async {
                loop {
                    tokio::time::sleep(LIVENESS_POLL).await;
                    if !self.running().await {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = self.watch_events() => {}
                _ = poll => {}
            }
        }
        .boxed()
    }

    fn drain(&self) -> BoxFuture<'_, ()> {
        async move {
            self.supervisors.close();
            self.supervisors.wait().await;
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_is_split_trimmed_validated_and_sorted() {
        let agents = parse_agents_label(" codex, claude,,claude ,bad name,../x,gh ");
        let names: Vec<&str> = agents.iter().map(|a| a.as_str()).collect();
        assert_eq!(names, ["claude", "codex", "gh"]);
        assert!(parse_agents_label("").is_empty());
    }
}
