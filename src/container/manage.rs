//! `list` and `stop`: the containers this tool started, found by their label.

use std::collections::HashMap;

use anyhow::Context as _;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use serde::Serialize;

use super::spec::{LABEL_AGENT, LABEL_MANAGED, LABEL_MODE};

/// One managed container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Managed {
    pub name: String,
    pub agent: String,
    pub mode: String,
    pub state: String,
    pub image: String,
}

/// Every container carrying the managed label, running or not, sorted by name.
pub async fn list(docker: &Docker) -> anyhow::Result<Vec<Managed>> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_MANAGED}=1")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let found = docker
        .list_containers(Some(options))
        .await
        .context("cannot list containers")?;
    let mut out: Vec<Managed> = found
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            Managed {
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                agent: label(LABEL_AGENT),
                mode: label(LABEL_MODE),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                image: c.image.unwrap_or_default(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes a container at once, with its anonymous volumes (the writable home).
pub async fn remove(docker: &Docker, name: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    docker.remove_container(name, Some(options)).await
}

/// Stops and removes `name`, which must be a managed container; also removes its agent config
/// dir. The ACP daemon notices the container is gone and exits by itself.
pub async fn stop(docker: &Docker, name: &str) -> anyhow::Result<()> {
    let inspect = match docker.inspect_container(name, None).await {
        Ok(i) => i,
        Err(e) if crate::podman::is_not_found(&e) => anyhow::bail!("no container named {name}"),
        Err(e) => return Err(e).context(format!("cannot inspect {name}")),
    };
    let managed = inspect
        .config
        .and_then(|c| c.labels)
        .is_some_and(|l| l.get(LABEL_MANAGED).map(String::as_str) == Some("1"));
    if !managed {
        anyhow::bail!("{name} was not started by terok-executor; not stopping it");
    }
    remove(docker, name)
        .await
        .with_context(|| format!("cannot remove {name}"))?;
    let dir = super::launch::containers_dir().join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

/// The `list` table.
pub fn table(rows: &[Managed]) -> String {
    let width = |f: fn(&Managed) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (wn, wa, wm, ws) = (
        width(|r| &r.name, "NAME"),
        width(|r| &r.agent, "AGENT"),
        width(|r| &r.mode, "MODE"),
        width(|r| &r.state, "STATE"),
    );
    let mut out = format!(
        "{:wn$}  {:wa$}  {:wm$}  {:ws$}  IMAGE\n",
        "NAME", "AGENT", "MODE", "STATE"
    );
    for r in rows {
        out.push_str(&format!(
            "{:wn$}  {:wa$}  {:wm$}  {:ws$}  {}\n",
            r.name, r.agent, r.mode, r.state, r.image
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = vec![Managed {
            name: "terok-executor-ab12".into(),
            agent: "claude".into(),
            mode: "acp".into(),
            state: "running".into(),
            image: "terok-l1-cli:x".into(),
        }];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            format!("{:19}  AGENT   MODE  STATE    IMAGE", "NAME")
        );
        assert_eq!(
            lines[1],
            "terok-executor-ab12  claude  acp   running  terok-l1-cli:x"
        );
    }
}
