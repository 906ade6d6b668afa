//! The local runtime: a host directory stands in for a container.
//!
//! Every executable file named `terok-<agent>-acp` directly in the directory is an agent's
//! wrapper. Wrappers run as host processes in their own process group, with the directory as
//! working directory, so ending one ends everything it started. The "container" is alive while
//! the directory exists. This runtime needs no container engine: it serves the demo, the tests
//! and the benchmark.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{
    AgentName, AgentProcess, ExitInfo, Identity, ProcessControl, Runtime, RuntimeError, StderrTail,
};

/// How long a wrapper gets between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_millis(1500);
/// How often the directory's existence is checked.
const LIVENESS_POLL: Duration = Duration::from_millis(500);

pub struct LocalRuntime {
    dir: PathBuf,
    env: super::ExtraEnv,
}

impl LocalRuntime {
    /// Serves the agents in `dir`, which must exist.
    pub fn new(dir: impl AsRef<Path>) -> Result<LocalRuntime, RuntimeError> {
        let dir = dir.as_ref();
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| RuntimeError::NotRunning(format!("{} ({e})", dir.display())))?;
        if !dir.is_dir() {
            return Err(RuntimeError::NotRunning(format!(
                "{} (not a directory)",
                dir.display()
            )));
        }
        Ok(LocalRuntime {
            dir,
            env: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn list_agents(&self) -> Result<Vec<AgentName>, RuntimeError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| RuntimeError::NotRunning(format!("{} ({e})", self.dir.display())))?;
        let mut agents = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(agent) = name
                .strip_prefix("terok-")
                .and_then(|n| n.strip_suffix("-acp"))
            else {
                continue;
            };
            let Ok(agent) = AgentName::new(agent) else {
                tracing::warn!(file = name, "ignoring wrapper with an invalid agent name");
                continue;
            };
            if is_executable_file(&entry.path()) {
                agents.push(agent);
            }
        }
        agents.sort();
        agents.dedup();
        Ok(agents)
    }

    fn start(&self, agent: &AgentName) -> Result<AgentProcess, RuntimeError> {
        let path = self.dir.join(agent.wrapper());
        if !is_executable_file(&path) {
            return Err(RuntimeError::NoWrapper {
                agent: agent.clone(),
                container: self.describe(),
            });
        }
        let mut child = Command::new(&path)
            .envs(self.env.get())
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RuntimeError::Spawn {
                agent: agent.clone(),
                reason: e.to_string(),
            })?;
        let spawn_err = |what: &str| RuntimeError::Spawn {
            agent: agent.clone(),
            reason: format!("no {what} pipe"),
        };
        let stdin = child.stdin.take().ok_or_else(|| spawn_err("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| spawn_err("stdout"))?;
        let mut stderr = child.stderr.take().ok_or_else(|| spawn_err("stderr"))?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);

        let tail = StderrTail::default();
        let tail_writer = tail.clone();
        let label = agent.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail_writer.push(&buf[..n]);
                if tracing::enabled!(tracing::Level::DEBUG) {
                    for line in String::from_utf8_lossy(&buf[..n]).lines() {
                        tracing::debug!(agent = %label, "stderr: {line}");
                    }
                }
            }
        });

        let (control, supervisor) = ProcessControl::pair();
        if let Some(pid) = pid {
            let _ = supervisor
                .pid
                .set(super::AgentPid::Host(pid.as_raw() as u32));
        }
        tokio::spawn(async move {
            let guard = GroupGuard(pid);
            let status = tokio::select! {
                status = child.wait() => status,
                _ = supervisor.terminate => {
                    guard.signal(Signal::SIGTERM);
                    match tokio::time::timeout(TERMINATE_GRACE, child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            guard.signal(Signal::SIGKILL);
                            child.wait().await
                        }
                    }
                }
            };
            // Whatever the wrapper started in its group goes with it.
            guard.signal(Signal::SIGKILL);
            std::mem::forget(guard);
            let info = match status {
                Ok(status) => exit_info(status),
                Err(_) => ExitInfo::Unknown,
            };
            let _ = supervisor.exit.send(Some(info));
        });

        Ok(AgentProcess {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: tail,
            control,
        })
    }
}

/// Kills the wrapper's process group if the supervising task is dropped before it finished,
/// e.g. when the async runtime shuts down.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.0 {
            let _ = killpg(pid, signal);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitInfo::Code(code),
        (None, Some(sig)) => ExitInfo::Signal(sig),
        _ => ExitInfo::Unknown,
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Runtime for LocalRuntime {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn workspace(&self) -> String {
        self.dir.display().to_string()
    }

    fn agents(&self) -> BoxFuture<'_, Result<Vec<AgentName>, RuntimeError>> {
        async move { self.list_agents() }.boxed()
    }

    fn identity(&self) -> BoxFuture<'_, Result<Identity, RuntimeError>> {
        async move {
            Ok(Identity {
                image: format!("local:{}", self.dir.display()),
                auth: "global".into(),
            })
        }
        .boxed()
    }

    fn spawn(&self, agent: &AgentName) -> BoxFuture<'_, Result<AgentProcess, RuntimeError>> {
        let agent = agent.clone();
        async move { self.start(&agent) }.boxed()
    }

    fn set_env(&self, env: Vec<(String, String)>) {
        self.env.set(env);
    }

    fn is_alive(&self) -> BoxFuture<'_, bool> {
        async move { self.dir.is_dir() }.boxed()
    }

    fn stopped(&self) -> BoxFuture<'_, ()> {
        async move {
            while self.dir.is_dir() {
                tokio::time::sleep(LIVENESS_POLL).await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_script(dir: &Path, name: &str, body: &str, mode: u32) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[tokio::test]
    async fn lists_only_executable_wrappers_sorted() {
        let dir = tempfile::tempdir().unwrap();
        write_script(dir.path(), "terok-zeta-acp", "true", 0o755);
        write_script(dir.path(), "terok-alpha-acp", "true", 0o755);
        write_script(dir.path(), "terok-noexec-acp", "true", 0o644);
        write_script(dir.path(), "terok-Bad:Name-acp", "true", 0o755);
        write_script(dir.path(), "other-tool", "true", 0o755);
        std::fs::create_dir(dir.path().join("terok-dir-acp")).unwrap();
        let rt = LocalRuntime::new(dir.path()).unwrap();
        let names: Vec<String> = rt
            .agents()
            .await
            .unwrap()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
    }

    #[tokio::test]
    async fn terminate_ends_a_wrapper_that_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        write_script(
            dir.path(),
            "terok-stubborn-acp",
            // An ignored SIGTERM survives exec; `ready` says the trap is in place.
            "trap '' TERM; echo ready; exec sleep 30",
            0o755,
        );
        let rt = LocalRuntime::new(dir.path()).unwrap();
        let mut proc = rt
            .spawn(&AgentName::new("stubborn").unwrap())
            .await
            .unwrap();
        let mut ready = [0u8; 6];
        tokio::io::AsyncReadExt::read_exact(&mut proc.stdout, &mut ready)
            .await
            .unwrap();
        proc.control.terminate();
        let status = tokio::time::timeout(Duration::from_secs(5), proc.control.exited())
            .await
            .unwrap();
        assert_eq!(status, ExitInfo::Signal(9));
    }

    #[tokio::test]
    async fn spawning_an_unknown_agent_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let rt = LocalRuntime::new(dir.path()).unwrap();
        let err = rt
            .spawn(&AgentName::new("ghost").unwrap())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, RuntimeError::NoWrapper { .. }));
    }

    #[tokio::test]
    async fn stderr_is_kept_as_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        write_script(
            dir.path(),
            "terok-noisy-acp",
            "echo 'something broke' >&2; exit 3",
            0o755,
        );
        let rt = LocalRuntime::new(dir.path()).unwrap();
        let mut proc = rt.spawn(&AgentName::new("noisy").unwrap()).await.unwrap();
        assert_eq!(proc.control.exited().await, ExitInfo::Code(3));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(proc.stderr.text(), "something broke");
    }
}
