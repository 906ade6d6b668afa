//! Reaching Podman through its Docker-compatible API socket.
//!
//! The socket is found the way Podman's own clients find it: `CONTAINER_HOST`, then
//! `DOCKER_HOST` (`unix://` paths; `tcp://`/`http://` addresses are used as given), then
//! `$XDG_RUNTIME_DIR/podman/podman.sock` (rootless), then `/run/podman/podman.sock` (root).
//! Each candidate must answer a ping; when none does, the error names every path tried and how
//! to start the service.

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;

/// How long one API request may take before it fails (exec attach streams are not bound by it).
const API_TIMEOUT_SECS: u64 = 120;
/// How long a candidate socket gets to answer the first ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach Podman's API; tried {tried}. {hint}")]
    NotFound { tried: String, hint: String },
}

/// Where an API service may be listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Http(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Http(addr) => f.write_str(addr),
        }
    }
}

/// The candidates, in order, from the given environment lookup.
pub fn candidates(env: impl Fn(&str) -> Option<String>) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for var in ["CONTAINER_HOST", "DOCKER_HOST"] {
        let Some(value) = env(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let value = value.trim().to_owned();
        let endpoint = if let Some(path) = value.strip_prefix("unix://") {
            Endpoint::Unix(PathBuf::from(path))
        } else if let Some(rest) = value.strip_prefix("tcp://") {
            Endpoint::Http(format!("http://{rest}"))
        } else if value.starts_with("http://") {
            Endpoint::Http(value)
        } else if value.starts_with('/') {
            Endpoint::Unix(PathBuf::from(value))
        } else {
            tracing::warn!(
                "ignoring {var}={value}: only unix://, tcp:// and http:// are supported"
            );
            continue;
        };
        if !out.contains(&endpoint) {
            out.push(endpoint);
        }
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let endpoint = Endpoint::Unix(PathBuf::from(dir).join("podman").join("podman.sock"));
        if !out.contains(&endpoint) {
            out.push(endpoint);
        }
    }
    let root = Endpoint::Unix(PathBuf::from("/run/podman/podman.sock"));
    if !out.contains(&root) {
        out.push(root);
    }
    out
}

fn client(endpoint: &Endpoint) -> Result<Docker, bollard::errors::Error> {
    match endpoint {
        Endpoint::Unix(path) => Docker::connect_with_unix(
            &path.to_string_lossy(),
            API_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        ),
        Endpoint::Http(addr) => {
            Docker::connect_with_http(addr, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        }
    }
}

/// Connects to the first candidate (from the environment) that answers a ping.
pub async fn connect() -> Result<Docker, ConnectError> {
    connect_to(candidates(|k| std::env::var(k).ok())).await
}

/// Connects to the first of `endpoints` that answers a ping.
pub async fn connect_to(endpoints: Vec<Endpoint>) -> Result<Docker, ConnectError> {
    let mut tried = Vec::new();
    for endpoint in endpoints {
        if let Endpoint::Unix(path) = &endpoint {
            if !path.exists() {
                tried.push(format!("{endpoint} (no such socket)"));
                continue;
            }
        }
        let outcome = match client(&endpoint) {
            Ok(docker) => match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
                Ok(Ok(_)) => {
                    tracing::debug!(%endpoint, "connected to the container engine");
                    return Ok(docker);
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer".to_owned(),
            },
            Err(e) => e.to_string(),
        };
        tried.push(format!("{endpoint} ({outcome})"));
    }
    Err(ConnectError::NotFound {
        tried: tried.join(", "),
        hint: start_hint(
            nix::unistd::geteuid().is_root(),
            std::env::var("XDG_RUNTIME_DIR").ok().as_deref(),
        ),
    })
}

/// How to start the API service so that a socket this module tries answers: root's system
/// socket, the user's runtime directory, or (rootless without one) a path named in
/// `CONTAINER_HOST`.
pub fn start_hint(root: bool, runtime_dir: Option<&str>) -> String {
    let run = |path: &str| format!("`podman system service --time=0 unix://{path} &`");
    if root {
        return format!(
            "Start the API service with `systemctl enable --now podman.socket`, or run {}",
            run("/run/podman/podman.sock")
        );
    }
    match runtime_dir.filter(|d| !d.is_empty()) {
        Some(dir) => format!(
            "Start the API service with `systemctl --user enable --now podman.socket`, or run {}",
            run(&format!("{dir}/podman/podman.sock"))
        ),
        None => format!(
            "XDG_RUNTIME_DIR is not set, so there is no per-user socket to try: run {} and \
             export CONTAINER_HOST=unix://$HOME/.podman.sock",
            run("$HOME/.podman.sock")
        ),
    }
}

/// Whether an API error means "no such container" (or image).
pub fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
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
    fn order_is_container_host_docker_host_runtime_dir_then_root() {
        let got = candidates(env(&[
            ("CONTAINER_HOST", "unix:///a.sock"),
            ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ]));
        assert_eq!(
            got,
            vec![
                Endpoint::Unix("/a.sock".into()),
                Endpoint::Http("http://127.0.0.1:2375".into()),
                Endpoint::Unix("/run/user/1000/podman/podman.sock".into()),
                Endpoint::Unix("/run/podman/podman.sock".into()),
            ]
        );
    }

    #[test]
    fn duplicates_and_unsupported_schemes_are_dropped() {
        let got = candidates(env(&[
            ("CONTAINER_HOST", "ssh://x"),
            ("DOCKER_HOST", "unix:///run/podman/podman.sock"),
        ]));
        assert_eq!(got, vec![Endpoint::Unix("/run/podman/podman.sock".into())]);
    }

    #[test]
    fn the_start_hint_names_a_socket_that_is_tried() {
        let root = start_hint(true, None);
        assert!(root.contains("unix:///run/podman/podman.sock"), "{root}");
        let tried = candidates(env(&[]));
        assert!(tried.contains(&Endpoint::Unix("/run/podman/podman.sock".into())));

        let user = start_hint(false, Some("/run/user/1000"));
        assert!(
            user.contains("unix:///run/user/1000/podman/podman.sock"),
            "{user}"
        );
        assert!(candidates(env(&[("XDG_RUNTIME_DIR", "/run/user/1000")]))
            .contains(&Endpoint::Unix("/run/user/1000/podman/podman.sock".into())));

        let bare = start_hint(false, Some(""));
        assert!(
            bare.contains("CONTAINER_HOST=unix://$HOME/.podman.sock"),
            "{bare}"
        );
        assert!(!bare.contains("//podman/podman.sock"), "{bare}");
    }

    #[tokio::test]
    async fn error_names_every_path_tried_and_how_to_start_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.sock");
        // A socket file nobody answers on.
        let dead = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        let err = connect_to(vec![
            Endpoint::Unix(missing.clone()),
            Endpoint::Unix(dead.clone()),
        ])
        .await
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(text.contains(&missing.display().to_string()), "{text}");
        assert!(text.contains(&dead.display().to_string()), "{text}");
        assert!(text.contains("podman system service"), "{text}");
    }
}
