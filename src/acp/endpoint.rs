//! Where a container's ACP endpoint lives, and starting its daemon on demand.
//!
//! Endpoints are files in `<runtime dir>/acp/`: `<name>.sock` (the daemon's socket),
//! `<name>.bound` (the agent bound last, as `{"agent": "<name>"}`), `<name>.log` (the daemon's
//! stderr when it was started on demand) and `<name>.lock`. The runtime dir is
//! `$TEROK_RUNTIME_DIR` if set, else `$XDG_RUNTIME_DIR/terok`, else `$XDG_STATE_HOME/terok`, else
//! `/run/terok` for root and `~/.local/state/terok` for everyone else; it is created with mode
//! 0700.

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::daemon::socket_is_live;

/// How long a freshly started daemon gets to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(6);

/// The runtime dir from the given environment lookup and effective uid.
pub fn runtime_dir_from(env: impl Fn(&str) -> Option<String>, is_root: bool) -> PathBuf {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("TEROK_RUNTIME_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = non_empty("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("terok");
    }
    if let Some(dir) = non_empty("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("terok");
    }
    if is_root {
        return PathBuf::from("/run/terok");
    }
    let home = non_empty("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home)
        .join(".local")
        .join("state")
        .join("terok")
}

/// The runtime dir of this process.
pub fn runtime_dir() -> PathBuf {
    runtime_dir_from(|k| std::env::var(k).ok(), nix::unistd::geteuid().is_root())
}

/// Where the daemon keeps state across restarts (the probe cache, the session map):
/// `$TEROK_STATE_DIR`, else `$TEROK_ROOT` (the root of all terok state), else
/// `$XDG_STATE_HOME/terok`, else `/var/lib/terok` for root and `~/.local/state/terok` otherwise.
pub fn state_dir() -> PathBuf {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(dir) = env("TEROK_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = env("TEROK_ROOT") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = env("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("terok");
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/terok");
    }
    PathBuf::from(env("HOME").unwrap_or_else(|| "/".into()))
        .join(".local")
        .join("state")
        .join("terok")
}

/// The directory holding every endpoint.
pub fn acp_dir() -> PathBuf {
    runtime_dir().join("acp")
}

/// The files of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub socket: PathBuf,
    pub bound: PathBuf,
    pub log: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("invalid endpoint name {0:?}: use letters, digits, '.', '_' and '-'")]
    BadName(String),
    #[error("cannot create {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the daemon log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the ACP daemon: {0}")]
    Spawn(std::io::Error),
    #[error("the ACP daemon exited before binding {socket} ({status}); see {log}")]
    Exited {
        socket: String,
        status: String,
        log: String,
    },
    #[error("the ACP daemon did not bind {socket} within {timeout:?}; see {log}")]
    Timeout {
        socket: String,
        timeout: Duration,
        log: String,
    },
}

impl Endpoint {
    /// The endpoint of container `name` under `dir` (the `acp` directory).
    pub fn in_dir(dir: &Path, name: &str) -> Result<Endpoint, EndpointError> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(EndpointError::BadName(name.to_owned()));
        }
        Ok(Endpoint {
            name: name.to_owned(),
            socket: dir.join(format!("{name}.sock")),
            bound: dir.join(format!("{name}.bound")),
            log: dir.join(format!("{name}.log")),
        })
    }

    /// The endpoint of container `name` in this process's runtime dir.
    pub fn named(name: &str) -> Result<Endpoint, EndpointError> {
        Endpoint::in_dir(&acp_dir(), name)
    }

    /// The agent named in the `.bound` marker, if any.
    pub fn bound_agent(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.bound).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value.get("agent")?.as_str().map(str::to_owned)
    }

    /// Makes sure a daemon serves this endpoint, starting `command` detached if none does:
    /// its own process group, stdio on /dev/null, stderr appended to the `.log`. Waits for it to
    /// accept, and reports an early exit with its status and the log path.
    pub async fn ensure_daemon(
        &self,
        mut command: std::process::Command,
    ) -> Result<bool, EndpointError> {
        if socket_is_live(&self.socket).await {
            return Ok(false);
        }
        let dir = self.socket.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| EndpointError::Directory {
                path: dir.to_owned(),
                source,
            })?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| EndpointError::Log {
                path: self.log.clone(),
                source,
            })?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .map_err(EndpointError::Spawn)?;
        let started = Instant::now();
        loop {
            if socket_is_live(&self.socket).await {
                // The daemon lives on by itself; reap it in the background if this process
                // outlives it.
                std::thread::spawn(move || child.wait());
                return Ok(true);
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Another daemon may have won a start-up race and be serving now.
                if status.success() && socket_is_live(&self.socket).await {
                    return Ok(false);
                }
                let status = match status.code() {
                    Some(code) => format!("exit code {code}"),
                    None => status.to_string(),
                };
                return Err(EndpointError::Exited {
                    socket: self.socket.display().to_string(),
                    status,
                    log: self.log.display().to_string(),
                });
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(EndpointError::Timeout {
                    socket: self.socket.display().to_string(),
                    timeout: START_TIMEOUT,
                    log: self.log.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn runtime_dir_precedence() {
        assert_eq!(
            runtime_dir_from(
                env(&[("TEROK_RUNTIME_DIR", "/x"), ("XDG_RUNTIME_DIR", "/r")]),
                false
            ),
            PathBuf::from("/x")
        );
        assert_eq!(
            runtime_dir_from(
                env(&[("XDG_RUNTIME_DIR", "/run/user/7"), ("XDG_STATE_HOME", "/s")]),
                false
            ),
            PathBuf::from("/run/user/7/terok")
        );
        assert_eq!(
            runtime_dir_from(env(&[("XDG_STATE_HOME", "/s")]), true),
            PathBuf::from("/s/terok")
        );
        assert_eq!(
            runtime_dir_from(env(&[("HOME", "/home/u")]), false),
            PathBuf::from("/home/u/.local/state/terok")
        );
        assert_eq!(
            runtime_dir_from(env(&[("HOME", "/root")]), true),
            PathBuf::from("/run/terok")
        );
    }

    #[test]
    fn endpoint_files_sit_side_by_side() {
        let e = Endpoint::in_dir(Path::new("/r/acp"), "proj-cli-1a2b").unwrap();
        assert_eq!(e.socket, PathBuf::from("/r/acp/proj-cli-1a2b.sock"));
        assert_eq!(e.bound, PathBuf::from("/r/acp/proj-cli-1a2b.bound"));
        assert_eq!(e.log, PathBuf::from("/r/acp/proj-cli-1a2b.log"));
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "a b",
            "x;rm",
            &"y".repeat(200),
        ] {
            assert!(Endpoint::in_dir(Path::new("/r"), bad).is_err(), "{bad:?}");
        }
    }
}
