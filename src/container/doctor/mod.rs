//! `doctor`: checks of the host and, given a container, of the container, each with a verdict
//! and the fix for anything wrong.
//!
//! Host: the Podman API, the image store's free space, the vault (present, opens with the
//! passphrase tiers), `routes.json` (present and covering the roster), terok-sandbox for the
//! brokers, and the shared config mounts (no real credential where a phantom marker belongs).
//! Container (through exec): it runs and is ours; the phantom-token and base-URL variables
//! point at the vault; the vault bridge answers; the ACP wrappers match the image label.

//!
//! # Layout
//! - [`check`]: a check's verdict, and the report.
//! - [`host`]: the checks that need no engine.
//! - [`inside`]: the container's checks.

mod check;
mod host;
mod inside;

pub use check::{render, summary, Check, Verdict};
pub use host::host_checks;
pub use inside::{container_checks, env_check};

/// Free space below which the image store gets a warning.
const LOW_SPACE: u64 = 5 * 1024 * 1024 * 1024;

/// The engine's checks: the API answers, and the image store has room.
pub async fn engine_checks(docker: Option<&bollard::Docker>, error: Option<String>) -> Vec<Check> {
    let Some(docker) = docker else {
        return vec![
            Check::new("podman", Verdict::Fail, error.unwrap_or_default())
                .fix("start Podman's API service (the error names the socket to start)"),
        ];
    };
    let info = match docker.info().await {
        Ok(info) => info,
        Err(e) => {
            return vec![Check::new(
                "podman",
                Verdict::Fail,
                format!("the API does not answer: {e}"),
            )]
        }
    };
    let mut checks = vec![Check::new(
        "podman",
        Verdict::Ok,
        format!(
            "API answers (server {})",
            info.server_version.unwrap_or_default()
        ),
    )];
    let root = info.docker_root_dir.unwrap_or_default();
    checks.push(match nix::sys::statvfs::statvfs(root.as_str()) {
        Ok(fs) => {
            let free = fs.blocks_available() * fs.fragment_size();
            let text = format!("{} free at {root}", crate::container::storage::human(free));
            if free < LOW_SPACE {
                Check::new("image-store", Verdict::Warn, text)
                    .fix("free space: `podman image prune`, `terok-executor storage`")
            } else {
                Check::new("image-store", Verdict::Ok, text)
            }
        }
        Err(e) => Check::new(
            "image-store",
            Verdict::Skip,
            format!("cannot measure {root:?}: {e}"),
        ),
    });
    checks
}
