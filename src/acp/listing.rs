//! `acp list`: which containers offer an ACP endpoint, and in what state.
//!
//! ACTIVE: a daemon accepts on the endpoint's socket (the agent bound last is read from the
//! `.bound` marker). READY: the container runs and ships at least one ACP-capable agent, but no
//! daemon serves it yet. UNSUPPORTED: no ACP-capable agent, or the container could not be
//! inspected (with the reason). A socket file nobody accepts on is stale: it is removed and
//! reported, never shown as ACTIVE.

use std::path::Path;

use serde::Serialize;

use super::daemon::socket_is_live;
use super::endpoint::Endpoint;
use super::runtime::{PodmanRuntime, Runtime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Active,
    Ready,
    Unsupported,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    pub status: Status,
    /// The agent bound last, for ACTIVE endpoints.
    pub agent: Option<String>,
    pub socket: String,
    /// Why an endpoint is UNSUPPORTED, or what was cleaned up.
    pub note: Option<String>,
}

/// ACTIVE if a daemon accepts on the socket; removes a stale socket. `None` when no daemon runs.
async fn active(endpoint: &Endpoint) -> (Option<Entry>, Option<String>) {
    if !endpoint.socket.exists() {
        return (None, None);
    }
    if socket_is_live(&endpoint.socket).await {
        let entry = Entry {
            name: endpoint.name.clone(),
            status: Status::Active,
            agent: endpoint.bound_agent(),
            socket: endpoint.socket.display().to_string(),
            note: None,
        };
        return (Some(entry), None);
    }
    let _ = std::fs::remove_file(&endpoint.socket);
    let _ = std::fs::remove_file(&endpoint.bound);
    (None, Some("stale socket removed".into()))
}

/// Every running Podman container.
pub async fn list_podman(acp_dir: &Path) -> anyhow::Result<Vec<Entry>> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let docker = crate::podman::connect().await?;
    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::new().all(false).build()))
        .await?;
    let mut names: Vec<String> = containers
        .into_iter()
        .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
        .map(|n| n.trim_start_matches('/').to_owned())
        .collect();
    names.sort();
    let checks = names.into_iter().map(|name| {
        let docker = docker.clone();
        async move {
            let endpoint = match Endpoint::in_dir(acp_dir, &name) {
                Ok(endpoint) => endpoint,
                Err(e) => {
                    return Entry {
                        name,
                        status: Status::Unsupported,
                        agent: None,
                        socket: String::new(),
                        note: Some(e.to_string()),
                    }
                }
            };
            let (entry, note) = active(&endpoint).await;
            if let Some(entry) = entry {
                return entry;
            }
            let socket = endpoint.socket.display().to_string();
            let (status, reason) = match PodmanRuntime::with_client(docker, &name).await {
                Ok(runtime) => match runtime.agents().await {
                    Ok(agents) if !agents.is_empty() => (Status::Ready, None),
                    Ok(_) => (Status::Unsupported, Some("no ACP-capable agent".to_owned())),
                    Err(e) => (Status::Unsupported, Some(e.to_string())),
                },
                Err(e) => (Status::Unsupported, Some(e.to_string())),
            };
            let note = match (reason, note) {
                (Some(r), Some(n)) => Some(format!("{r}; {n}")),
                (r, n) => r.or(n),
            };
            Entry {
                name,
                status,
                agent: None,
                socket,
                note,
            }
        }
    });
    Ok(futures::future::join_all(checks).await)
}

/// The endpoints whose socket file is in `acp_dir`, in name order, without connecting to them
/// (names that are not valid endpoint names are left out).
pub fn socket_endpoints(acp_dir: &Path) -> Vec<Endpoint> {
    let Ok(dir) = std::fs::read_dir(acp_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".sock"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|name| Endpoint::in_dir(acp_dir, name).ok())
        .collect()
}

/// Every endpoint socket in `acp_dir` (for the local runtime, whose "containers" are
/// directories the daemon was started on).
pub async fn list_sockets(acp_dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for endpoint in socket_endpoints(acp_dir) {
        match active(&endpoint).await {
            (Some(entry), _) => entries.push(entry),
            (None, note) => entries.push(Entry {
                socket: endpoint.socket.display().to_string(),
                name: endpoint.name,
                status: Status::Unsupported,
                agent: None,
                note,
            }),
        }
    }
    Ok(entries)
}

/// The human table; `nothing` says why there is no entry when there is none (what the runtime
/// looked at and found empty).
pub fn render_table(entries: &[Entry], nothing: &str) -> String {
    if entries.is_empty() {
        return format!("No ACP endpoints found ({nothing}).\n");
    }
    let width = |f: &dyn Fn(&Entry) -> usize, header: &str| {
        entries.iter().map(f).max().unwrap_or(0).max(header.len())
    };
    let wn = width(&|e| e.name.len(), "NAME");
    let ws = width(&|e| format!("{:?}", e.status).len(), "STATUS");
    let wa = width(&|e| e.agent.as_deref().unwrap_or("-").len(), "AGENT");
    let mut out = format!(
        "{:<wn$}  {:<ws$}  {:<wa$}  SOCKET\n",
        "NAME", "STATUS", "AGENT"
    );
    for e in entries {
        let status = serde_json::to_value(e.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut line = format!(
            "{:<wn$}  {:<ws$}  {:<wa$}  {}",
            e.name,
            status,
            e.agent.as_deref().unwrap_or("-"),
            e.socket
        );
        if let Some(note) = &e.note {
            line.push_str(&format!("  ({note})"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
