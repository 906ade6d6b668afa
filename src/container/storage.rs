//! `storage`: what tasks leave on the host disk, and what a cleanup would free.
//!
//! Three kinds of footprint:
//! - **tasks**: each container's directory under `<runtime dir>/executor/<name>` (its agent
//!   config dir) and its vault broker's files under `<state root>/vault-broker`;
//! - **shared mounts**: the per-provider config directories under the mounts dir, which every
//!   container of that provider shares and which outlive them all;
//! - **daemon state**: the ACP daemons' probe caches and session maps.
//!
//! A task whose container no longer exists is an orphan (a container removed without `stop`):
//! its files are what a cleanup would free. Without the Podman API nobody can tell, and nothing
//! is counted as reclaimable. Sizes are the apparent sizes of regular files; symlinks are never
//! followed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::launcher::paths::HostPaths;
use crate::launcher::roster::Roster;

/// One task's footprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskUsage {
    pub name: String,
    pub bytes: u64,
    /// Whether the container still exists; `None` when the API could not be asked.
    pub container_exists: Option<bool>,
}

/// One shared config mount's footprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountUsage {
    pub dir: String,
    pub label: String,
    pub bytes: u64,
}

/// Everything `storage` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub tasks: Vec<TaskUsage>,
    pub shared_mounts: Vec<MountUsage>,
    pub daemon_state_bytes: u64,
    /// What removing the orphaned tasks' files would free.
    pub reclaimable_bytes: u64,
}

/// Bytes in regular files under `path` (the file itself when it is one); symlinks are not
/// followed and unreadable entries count nothing.
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries.flatten().map(|e| dir_bytes(&e.path())).sum()
}

/// Measures the footprint. `tasks_dir` holds one directory per container; `exists` says
/// whether a container of that name exists (`None`: unknown).
pub fn measure(
    paths: &HostPaths,
    roster: &Roster,
    tasks_dir: &Path,
    daemon_state: &Path,
    exists: impl Fn(&str) -> Option<bool>,
) -> Usage {
    let broker = paths.state_dir.join("vault-broker");
    let mut per_task: BTreeMap<String, u64> = BTreeMap::new();
    for dir in subdirs(tasks_dir) {
        *per_task.entry(dir.clone()).or_default() += dir_bytes(&tasks_dir.join(&dir));
    }
    for kind in ["sidecar", "logs", "pids"] {
        for file in entries(&broker.join(kind)) {
            let name = file
                .rsplit_once('.')
                .map_or(file.as_str(), |(n, _)| n)
                .to_owned();
            *per_task.entry(name).or_default() += dir_bytes(&broker.join(kind).join(&file));
        }
    }
    let tasks: Vec<TaskUsage> = per_task
        .into_iter()
        .map(|(name, bytes)| TaskUsage {
            container_exists: exists(&name),
            name,
            bytes,
        })
        .collect();
    let reclaimable_bytes = tasks
        .iter()
        .filter(|t| t.container_exists == Some(false))
        .map(|t| t.bytes)
        .sum();
    let shared_mounts = subdirs(&paths.mounts_dir)
        .into_iter()
        .map(|dir| MountUsage {
            bytes: dir_bytes(&paths.mounts_dir.join(&dir)),
            label: roster
                .mounts()
                .iter()
                .find(|m| m.host_dir == dir)
                .map_or_else(
                    || dir.trim_start_matches('_').replace('-', " "),
                    |m| m.label.clone(),
                ),
            dir,
        })
        .collect();
    let daemon_state_bytes = ["acp-cache", "acp-sessions"]
        .iter()
        .map(|d| dir_bytes(&daemon_state.join(d)))
        .sum();
    Usage {
        tasks,
        shared_mounts,
        daemon_state_bytes,
        reclaimable_bytes,
    }
}

/// The usage as a table.
pub fn render(usage: &Usage) -> String {
    let mut out = String::from("TASK                                   SIZE  CONTAINER\n");
    for t in &usage.tasks {
        let state = match t.container_exists {
            Some(true) => "exists",
            Some(false) => "gone (reclaimable)",
            None => "unknown",
        };
        out.push_str(&format!("{:<36} {:>7}  {state}\n", t.name, human(t.bytes)));
    }
    out.push_str("\nSHARED MOUNT                           SIZE  LABEL\n");
    for m in &usage.shared_mounts {
        out.push_str(&format!(
            "{:<36} {:>7}  {}\n",
            m.dir,
            human(m.bytes),
            m.label
        ));
    }
    out.push_str(&format!(
        "\ndaemon state (probe caches, session maps): {}\nreclaimable (tasks whose container is gone): {}\n",
        human(usage.daemon_state_bytes),
        human(usage.reclaimable_bytes)
    ));
    out
}

/// `1.5M`-style sizes (powers of 1024).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

fn subdirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

fn entries(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::paths::FixedEnv;
    use std::collections::HashMap;

    #[test]
    fn tasks_mounts_and_orphans_are_measured_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let vars = FixedEnv {
            vars: HashMap::from([
                ("HOME".into(), root.display().to_string()),
                (
                    "TEROK_ROOT".into(),
                    root.join("state").display().to_string(),
                ),
                ("TEROK_CONFIG_FILE".into(), "/nonexistent.yml".into()),
            ]),
            root: false,
        };
        let paths = HostPaths::resolve(&vars);
        let tasks = root.join("run/executor");
        let write = |p: &Path, n: usize| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, vec![b'x'; n]).unwrap();
        };
        write(&tasks.join("alive/agent-config/instructions.md"), 100);
        write(&tasks.join("gone/agent-config/instructions.md"), 40);
        write(&tasks.join("gone/agent-config/prompt.txt"), 2);
        write(&paths.state_dir.join("vault-broker/sidecar/gone.json"), 300);
        write(&paths.state_dir.join("vault-broker/logs/gone.log"), 8);
        write(&paths.mounts_dir.join("_claude-config/settings.json"), 1000);
        write(&paths.mounts_dir.join("_custom-thing/file"), 5);
        write(&root.join("big-elsewhere"), 1_000_000);
        std::os::unix::fs::symlink(root.join("big-elsewhere"), tasks.join("alive/link")).unwrap();
        write(&root.join("daemon/acp-cache/img.json"), 70);
        let roster = crate::launcher::roster::load_roster(None).unwrap();

        let usage = measure(&paths, &roster, &tasks, &root.join("daemon"), |name| {
            Some(name == "alive")
        });
        assert_eq!(
            usage.tasks,
            [
                TaskUsage {
                    name: "alive".into(),
                    bytes: 100,
                    container_exists: Some(true)
                },
                TaskUsage {
                    name: "gone".into(),
                    bytes: 350,
                    container_exists: Some(false)
                },
            ]
        );
        assert_eq!(usage.reclaimable_bytes, 350);
        assert_eq!(usage.daemon_state_bytes, 70);
        assert_eq!(usage.shared_mounts.len(), 2);
        assert_eq!(usage.shared_mounts[0].dir, "_claude-config");
        assert_eq!(usage.shared_mounts[0].bytes, 1000);
        assert_ne!(
            usage.shared_mounts[0].label, "claude config",
            "the roster's label"
        );
        assert_eq!(usage.shared_mounts[1].label, "custom thing");

        let unknown = measure(&paths, &roster, &tasks, &root.join("daemon"), |_| None);
        assert_eq!(
            unknown.reclaimable_bytes, 0,
            "nothing is reclaimable when nobody can tell"
        );
        let table = render(&usage);
        assert!(
            table.contains("gone (reclaimable)") && table.contains("350B"),
            "{table}"
        );
    }

    #[test]
    fn sizes_read_like_du() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1536), "1.5K");
        assert_eq!(human(5 * 1024 * 1024 * 1024), "5.0G");
    }
}
