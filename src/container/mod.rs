//! Agent containers: started hardened through the API, labelled, listed and stopped.
//!
//! # Layout
//! - [`hardening`]: the default restrictions and what `--unrestricted` relaxes.
//! - [`spec`]: one launch as a create body (labels, command, env, mounts).
//! - [`headless`]: a headless run's command line and the overrides it takes.
//! - [`preflight`]: what `run` needs, checked in order before anything is created.
//! - [`launch`]: `run` (preflight, environment, host preparation, start, modes).
//! - [`manage`]: `list` and `stop`, by label.
//! - [`ownership`]: the mount directories given to the container user under rootful Podman.
//! - [`credentials`]: a launch's vault tokens, minted and revoked.
//! - [`broker`]: the container's vault broker (terok-sandbox's supervisor), started and ended.
//! - [`doctor`]: `doctor`, checks of the host and a container with their fixes.
//! - [`sealed`]: sealed containers (copied in, no bind mounts) and `pull`.
//! - [`storage`]: `storage`, what tasks leave on disk.
//! - [`vault_login`]: the host's side of an editor's login through the vault (the daemon's
//!   vault access, and `acp connect <container> vault-login <agent>`).
//! - [`cli`]: the clap arguments.

pub mod broker;
pub mod cli;
pub mod credentials;
pub mod doctor;
pub mod hardening;
pub mod headless;
pub mod launch;
pub mod manage;
pub mod ownership;
pub mod preflight;
pub mod sealed;
pub mod spec;
pub mod storage;
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

/// `terok-executor storage`.
pub async fn run_storage(args: cli::ListArgs) -> anyhow::Result<ExitCode> {
    let paths = crate::launcher::paths::HostPaths::from_env();
    let roster = crate::image::cli::load_roster()?;
    // Which containers exist, when the API can say; otherwise every task is "unknown".
    let existing: Option<std::collections::HashSet<String>> = match crate::podman::connect().await {
        Ok(docker) => match docker
            .list_containers(Some(
                bollard::query_parameters::ListContainersOptionsBuilder::default()
                    .all(true)
                    .build(),
            ))
            .await
        {
            Ok(found) => Some(
                found
                    .into_iter()
                    .flat_map(|c| c.names.unwrap_or_default())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .collect(),
            ),
            Err(e) => {
                eprintln!("note: cannot list containers ({e}); no task counts as reclaimable");
                None
            }
        },
        Err(e) => {
            eprintln!("note: {e}; no task counts as reclaimable");
            None
        }
    };
    let usage = storage::measure(
        &paths,
        &roster,
        &launch::containers_dir(),
        &crate::acp::endpoint::state_dir(),
        |name| existing.as_ref().map(|set| set.contains(name)),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&usage)?);
    } else {
        print!("{}", storage::render(&usage));
    }
    Ok(ExitCode::SUCCESS)
}

/// `terok-executor doctor`: exits 1 when a check failed.
pub async fn run_doctor(args: cli::DoctorArgs) -> anyhow::Result<ExitCode> {
    let paths = crate::launcher::paths::HostPaths::from_env();
    let roster = crate::image::cli::load_roster()?;
    let (docker, error) = match crate::podman::connect().await {
        Ok(docker) => (Some(docker), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut checks = doctor::engine_checks(docker.as_ref(), error).await;
    checks.extend(doctor::host_checks(&paths, &roster));
    if let Some(name) = &args.container {
        match &docker {
            Some(docker) => {
                checks.extend(doctor::container_checks(docker, name, &paths, &roster).await)
            }
            None => checks.push(doctor::Check {
                name: "container",
                verdict: doctor::Verdict::Skip,
                detail: "the Podman API is needed to look inside".into(),
                fix: String::new(),
            }),
        }
    }
    let (line, failed) = doctor::summary(&checks);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print!("{}", doctor::render(&checks));
        println!("{line}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `terok-executor pull`.
pub async fn run_pull(args: cli::PullArgs) -> anyhow::Result<ExitCode> {
    let docker = crate::podman::connect().await?;
    let last = std::path::Path::new(&args.path)
        .file_name()
        .map_or_else(|| "root".to_owned(), |n| n.to_string_lossy().into_owned());
    let dest = args
        .to
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(format!("{}-{last}", args.container)));
    let count = sealed::pull(&docker, &args.container, &args.path, &dest).await?;
    eprintln!(
        "copied {count} entries of {}:{} to {}",
        args.container,
        args.path,
        dest.display()
    );
    println!("{}", dest.display());
    Ok(ExitCode::SUCCESS)
}
