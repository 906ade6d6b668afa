//! Agent containers: started hardened through the API, labelled, listed and stopped.
//!
//! # Layout
//! - [`hardening`]: the default restrictions and what `--unrestricted` relaxes.
//! - [`spec`]: one launch as a create body (labels, command, env, mounts).
//! - [`launch`]: `run` (images, environment, host preparation, start, modes).
//! - [`manage`]: `list` and `stop`, by label.
//! - [`ownership`]: the mount directories given to the container user under rootful Podman.
//! - [`credentials`]: a launch's vault tokens, minted and revoked.
//! - [`broker`]: the container's vault broker (terok-sandbox's supervisor), started and ended.
//! - [`vault_login`]: the host's side of an editor's login through the vault (the daemon's
//!   vault access, and `acp connect <container> vault-login <agent>`).
//! - [`cli`]: the clap arguments.

pub mod broker;
pub mod cli;
pub mod credentials;
pub mod hardening;
pub mod launch;
pub mod manage;
pub mod ownership;
pub mod spec;
pub mod vault_login;

use std::process::ExitCode;

/// `terok-executor list`.
pub async fn run_list(args: cli::ListArgs) -> anyhow::Result<ExitCode> {
    let docker = crate::podman::connect().await?;
    let rows = manage::list(&docker).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        eprintln!("no containers started by terok-executor");
    } else {
        print!("{}", manage::table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// `terok-executor stop`.
pub async fn run_stop(args: cli::StopArgs) -> anyhow::Result<ExitCode> {
    let docker = crate::podman::connect().await?;
    let mut failed = false;
    for name in &args.names {
        match manage::stop(&docker, name).await {
            Ok(()) => {
                credentials::revoke(&crate::launcher::paths::HostPaths::from_env(), name);
                println!("{name}");
            }
            Err(e) => {
                eprintln!("terok-executor: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
