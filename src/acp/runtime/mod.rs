//! Where the agents live: the one abstraction the rest of the proxy runs on.
//!
//! A [`Runtime`] answers four questions about one container: which agents ship an ACP wrapper,
//! which identity keys the probe cache, whether the container is still alive, and how to start
//! an agent's wrapper with piped stdio. Probe, cache, proxy and daemon only ever see this trait,
//! so a runtime whose stdio is an exec attach stream rather than a child process fits as well as
//! the local one. A started wrapper is an [`AgentProcess`]: its stdin and stdout as async byte
//! streams, a bounded tail of its stderr for error messages, and a [`ProcessControl`] that ends
//! it (gracefully, then by force) and reports how it exited.

pub mod local;
pub mod podman;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};

pub use local::LocalRuntime;
pub use podman::PodmanRuntime;

/// An agent's name as it appears in `terok-<agent>-acp`: lowercase ASCII letters, digits, `-`,
/// `_` and `.`, starting with a letter or digit, at most 64 bytes. Anything else (a `:`, a `/`,
/// shell metacharacters) is refused before it can reach a command line.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentName(Arc<str>);

impl AgentName {
    pub fn new(name: &str) -> Result<AgentName, InvalidAgentName> {
        let ok_first = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let ok_rest = name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
        if ok_first && ok_rest && name.len() <= 64 {
            Ok(AgentName(name.into()))
        } else {
            Err(InvalidAgentName(name.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a shared string.
    pub fn as_arc(&self) -> Arc<str> {
        self.0.clone()
    }

    /// The wrapper executable's file name.
    pub fn wrapper(&self) -> String {
        format!("terok-{}-acp", self.0)
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl serde::Serialize for AgentName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AgentName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        AgentName::new(&name).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid agent name {0:?}: expected lowercase letters, digits, '-', '_' or '.'")]
pub struct InvalidAgentName(pub String);

/// What keys cached probe results: the same image with the same credentials gives the same
/// answers, whichever container runs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub image: String,
    pub auth: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("agent {agent} has no ACP wrapper in {container}")]
    NoWrapper { agent: AgentName, container: String },
    #[error("cannot start {agent}: {reason}")]
    Spawn { agent: AgentName, reason: String },
    #[error("{0}")]
    Other(String),
}

/// Boxed byte streams of a started wrapper.
pub type AgentStdin = Box<dyn AsyncWrite + Send + Unpin>;
pub type AgentStdout = Box<dyn AsyncRead + Send + Unpin>;

/// A started agent wrapper.
/// Variables added to every wrapper a runtime starts (see [`Runtime::set_env`]).
#[derive(Debug, Default)]
pub struct ExtraEnv(Mutex<Vec<(String, String)>>);

impl ExtraEnv {
    pub fn set(&self, env: Vec<(String, String)>) {
        if let Ok(mut current) = self.0.lock() {
            *current = env;
        }
    }

    pub fn get(&self) -> Vec<(String, String)> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

pub struct AgentProcess {
    pub stdin: AgentStdin,
    pub stdout: AgentStdout,
    pub stderr: StderrTail,
    pub control: ProcessControl,
}

/// The container an ACP endpoint serves.
pub trait Runtime: Send + Sync + 'static {
    /// Names the container in logs and messages.
    fn describe(&self) -> String;

    /// The working directory probes open their sessions in.
    fn workspace(&self) -> String;

    /// Where agents see the client's project, when they live in another file system (a
    /// container); `None` when host paths are valid for agents as they are.
    fn container_workspace(&self) -> Option<String> {
        None
    }

    /// Agents that ship an ACP wrapper, sorted by name.
    fn agents(&self) -> BoxFuture<'_, Result<Vec<AgentName>, RuntimeError>>;

    /// The identity cached probe results are keyed by.
    fn identity(&self) -> BoxFuture<'_, Result<Identity, RuntimeError>>;

    /// Starts an agent's wrapper with piped stdio.
    fn spawn(&self, agent: &AgentName) -> BoxFuture<'_, Result<AgentProcess, RuntimeError>>;

    /// Sets variables every wrapper started from now on gets on top of its environment (the
    /// phantom tokens of a login made after the container started). Replaces the previous set.
    fn set_env(&self, env: Vec<(String, String)>);

    /// Whether the container is still there and running.
    fn is_alive(&self) -> BoxFuture<'_, bool>;

    /// Resolves once the container has stopped or disappeared.
    fn stopped(&self) -> BoxFuture<'_, ()>;

    /// Waits until every wrapper asked to end has ended (called once at shutdown).
    fn drain(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// How a wrapper ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    Code(i32),
    Signal(i32),
    Unknown,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(code) => write!(f, "exit code {code}"),
            ExitInfo::Signal(sig) => write!(f, "signal {sig}"),
            ExitInfo::Unknown => f.write_str("unknown exit status"),
        }
    }
}

/// The proxy's handle on a running wrapper. Dropping it asks the runtime to end the process.
pub struct ProcessControl {
    terminate: Option<oneshot::Sender<()>>,
    exit: watch::Receiver<Option<ExitInfo>>,
    pid: Arc<std::sync::OnceLock<AgentPid>>,
}

/// A wrapper's process id, as far as the daemon can know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentPid {
    /// A process on the daemon's host: its `/proc` entry is readable.
    Host(u32),
    /// A process inside the container, in the container's pid namespace.
    Container(i64),
}

/// The runtime's side of a [`ProcessControl`]: learns when to terminate, reports the exit.
pub struct ProcessSupervisor {
    pub terminate: oneshot::Receiver<()>,
    pub exit: watch::Sender<Option<ExitInfo>>,
    /// Set once the process id is known.
    pub pid: Arc<std::sync::OnceLock<AgentPid>>,
}

impl ProcessControl {
    pub fn pair() -> (ProcessControl, ProcessSupervisor) {
        let (term_tx, term_rx) = oneshot::channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        let pid = Arc::<std::sync::OnceLock<AgentPid>>::default();
        (
            ProcessControl {
                terminate: Some(term_tx),
                exit: exit_rx,
                pid: pid.clone(),
            },
            ProcessSupervisor {
                terminate: term_rx,
                exit: exit_tx,
                pid,
            },
        )
    }

    /// The process id, once the runtime knows it.
    pub fn pid(&self) -> Option<AgentPid> {
        self.pid.get().copied()
    }

    /// Asks the runtime to end the process: gracefully first, then by force.
    pub fn terminate(&mut self) {
        if let Some(tx) = self.terminate.take() {
            let _ = tx.send(());
        }
    }

    /// The exit status, once known.
    pub fn exit_status(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Waits until the process has exited.
    pub async fn exited(&mut self) -> ExitInfo {
        match self.exit.wait_for(Option::is_some).await {
            Ok(status) => status.unwrap_or(ExitInfo::Unknown),
            Err(_) => ExitInfo::Unknown,
        }
    }

    /// A receiver that sees the exit status, for waiting after the control is gone.
    pub fn exit_watch(&self) -> watch::Receiver<Option<ExitInfo>> {
        self.exit.clone()
    }
}

impl Drop for ProcessControl {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The last few KiB a wrapper wrote to stderr, kept for error messages.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

const STDERR_TAIL_BYTES: usize = 4096;

impl StderrTail {
    pub fn push(&self, bytes: &[u8]) {
        let Ok(mut tail) = self.0.lock() else { return };
        let keep = bytes.len().min(STDERR_TAIL_BYTES);
        tail.extend(&bytes[bytes.len() - keep..]);
        let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
        tail.drain(..excess);
    }

    /// The tail as text, trimmed, starting at a line boundary when one is available.
    pub fn text(&self) -> String {
        let Ok(tail) = self.0.lock() else {
            return String::new();
        };
        let bytes: Vec<u8> = tail.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let text = if tail.len() >= STDERR_TAIL_BYTES {
            text.split_once('\n')
                .map(|(_, rest)| rest)
                .unwrap_or(&text)
                .to_owned()
        } else {
            text.into_owned()
        };
        text.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_refuse_metacharacters_and_separators() {
        for bad in [
            "", "Claude", "a:b", "a/b", "../x", "a;rm", "a b", "-x", ".x", "a$(x)",
        ] {
            assert!(AgentName::new(bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["claude", "codex", "open-code", "gpt_5", "a.b", "9x"] {
            assert!(AgentName::new(good).is_ok(), "{good:?} must be accepted");
        }
    }

    #[test]
    fn stderr_tail_keeps_the_end() {
        let tail = StderrTail::default();
        for i in 0..2000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let text = tail.text();
        assert!(text.ends_with("line 1999"));
        assert!(text.starts_with("line "));
        assert!(text.len() <= STDERR_TAIL_BYTES);
    }
}
