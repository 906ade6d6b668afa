//! `run`: from an agent name to a started, hardened container.
//!
//! Order: resolve the agent, make sure the images exist, assemble the environment and volumes,
//! prepare the host (directories, credential files, config patches; a failure stops the launch),
//! write the agent config dir, create and start the container, then the mode: follow a headless
//! run to its exit code, print how to attach, or start the ACP daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;

use super::cli::RunArgs;
use super::hardening::Hardening;
use super::ownership::{hand_over, CONTAINER_GID, CONTAINER_UID};
use super::spec::{command, LaunchSpec, Mode, NAME_PREFIX};
use crate::acp::endpoint::{runtime_dir, Endpoint};
use crate::image::cli::load_roster;
use crate::image::ensure_images;
use crate::launcher::env::{
    assemble_container_env, detect_host_timezone, prepare_host, ContainerEnvSpec,
};
use crate::launcher::paths::{HostPaths, LayeredConfig};
use crate::launcher::roster::Selection;
use crate::launcher::vault::location::resolve_vault_location;

/// Where the per-container agent config dirs live on the host.
pub fn containers_dir() -> PathBuf {
    runtime_dir().join("executor")
}

/// The agent config dir of container `name`.
pub fn agent_config_dir(name: &str) -> PathBuf {
    containers_dir().join(name).join("agent-config")
}

fn new_task_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// The `terok-executor acp` command that serves `container` on `socket`.
pub fn acp_daemon_command(container: &str, socket: &Path) -> anyhow::Result<std::process::Command> {
    let mut cmd = std::process::Command::new(
        std::env::current_exe().context("cannot locate the terok-executor binary")?,
    );
    cmd.args(["acp", "--runtime", "podman", container])
        .arg(socket);
    Ok(cmd)
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let roster = load_roster()?;
    let agent = roster.provider(Some(&args.agent), None)?.clone();
    let workspace = std::fs::canonicalize(&args.path)
        .with_context(|| format!("cannot use {} as the workspace", args.path.display()))?;
    if !workspace.is_dir() {
        bail!("{} is not a directory", workspace.display());
    }
    let mode = match (&args.prompt, args.acp) {
        (Some(_), _) => Mode::Headless,
        (None, true) => Mode::Acp,
        (None, false) => Mode::Interactive,
    };
    let task_id = new_task_id();
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{NAME_PREFIX}{task_id}"));
    // The name also names the ACP endpoint files; check it before anything is created.
    let endpoint = Endpoint::named(&name)?;

    let paths = HostPaths::from_env();
    let (docker, image, vault_db) =
        preflight(&args, &roster, &agent.name, &paths, &workspace).await?;

    let config_dir = agent_config_dir(&name);
    // Until the container runs, a failed launch takes back its task directory, tokens and
    // broker files.
    let mut unwind = Unwind {
        paths: &paths,
        name: &name,
        armed: true,
    };
    std::fs::create_dir_all(&config_dir)
        .with_context(|| format!("cannot create {}", config_dir.display()))?;
    crate::launcher::agent_config::prepare(
        &config_dir,
        &roster,
        &agent,
        &paths.config_files,
        &workspace,
        &args.subagents,
    )?;
    if let Some(prompt) = &args.prompt {
        std::fs::write(config_dir.join("prompt.txt"), prompt)?;
    }
    let mut spec = ContainerEnvSpec::new(&task_id, &agent.name, &workspace, &paths.mounts_dir);
    spec.timezone = detect_host_timezone();
    spec.agent_config_dir = Some(config_dir.clone());
    let mut vault = super::credentials::launch_env(&roster, &paths, &name, vault_db)?;
    let socket_mode = vault
        .env
        .iter()
        .any(|(k, _)| k == "TEROK_VAULT_LOOPBACK_PORT");
    if args.sealed && socket_mode {
        vault.broker = None;
        // The broker's socket would need a bind mount, and tokens no broker serves are useless
        // (the bridge would only wait for them): in socket mode a sealed container gets none.
        super::credentials::revoke(&paths, &name);
        vault.env.clear();
        eprintln!(
            "note: a sealed container gets no vault tokens in socket mode (the broker's socket \
             would need a mount; TCP mode serves them)"
        );
    }
    spec.vault_env = vault.env;
    if let Some(broker) = &vault.broker {
        spec.extra_volumes.push(broker.volume());
    }
    let env = assemble_container_env(&spec, &roster)?;
    let report = prepare_host(&env.prepare, &roster, || {
        resolve_vault_location(&LayeredConfig::load(&paths.config_files))
    })
    .context("cannot prepare the host for the container")?;
    tracing::debug!(?report, "shared config patches reconciled");

    let rootless = !nix::unistd::geteuid().is_root();
    if !rootless {
        // Rootful Podman maps no user: the container's dev user needs the mount dirs as its own.
        let mut dirs = env.prepare.dirs.clone();
        dirs.push(config_dir.clone());
        hand_over(&dirs, CONTAINER_UID, CONTAINER_GID)
            .context("cannot give the mount directories to the container's user")?;
    }
    let mut hardening = if args.unrestricted {
        Hardening::unrestricted(rootless)
    } else {
        Hardening::restricted(rootless)
    };
    if let Some(memory) = args.memory {
        hardening.memory = Some(memory);
    }
    if let Some(pids) = args.pids_limit {
        hardening.pids_limit = Some(pids);
    }
    let mut container_env = env.env;
    for (key, value) in &args.env {
        container_env.insert(key.clone(), value.clone());
    }
    let headless = super::headless::HeadlessOptions {
        model: args.model.clone(),
        max_turns: args.max_turns,
        timeout: args.timeout,
    };
    if mode == Mode::Headless {
        for warning in super::headless::line(&agent, &headless).1 {
            eprintln!("warning: {warning}");
        }
    }
    let launch = LaunchSpec {
        name: name.clone(),
        image,
        agent: agent.name.clone(),
        mode,
        command: command(mode, &agent, &headless),
        env: container_env,
        volumes: env.volumes,
        hardening,
        sealed: args.sealed,
    };
    start(&docker, &launch).await?;
    unwind.armed = false;
    if let Some(broker) = &vault.broker {
        let owner = (!rootless).then_some((CONTAINER_UID, CONTAINER_GID));
        if let Err(e) = start_broker(&docker, &name, broker, owner).await {
            if vault.required {
                let _ = super::manage::remove(&docker, &name).await;
                super::credentials::revoke(&paths, &name);
                return Err(e.context("the vault is required (vault.required in the config)"));
            }
            eprintln!("warning: {e:#}");
        }
    }
    eprintln!("started {name} ({} on {})", agent.name, launch.image);

    match mode {
        Mode::Headless => {
            let started = std::time::Instant::now();
            let code = follow(&docker, &name).await?;
            match args.timeout {
                Some(limit) if super::headless::timed_out(limit, code, started.elapsed()) => {
                    eprintln!("the agent was ended after its --timeout of {limit:?}");
                    Ok(ExitCode::from(super::headless::TIMED_OUT))
                }
                _ => Ok(ExitCode::from(code)),
            }
        }
        Mode::Interactive => {
            println!("{name}");
            eprintln!("attach with:  podman exec -it {name} bash -l");
            eprintln!("stop with:    terok-executor stop {name}");
            Ok(ExitCode::SUCCESS)
        }
        Mode::Acp => {
            let cmd = acp_daemon_command(&name, &endpoint.socket)?;
            endpoint
                .ensure_daemon(cmd)
                .await
                .with_context(|| format!("container {name} runs, but its ACP daemon does not"))?;
            println!("terok-executor acp connect {name}");
            eprintln!("ACP endpoint: {}", endpoint.socket.display());
            eprintln!("stop with:    terok-executor stop {name}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Creates the container, copies a sealed one's files in, and starts it; a container that fails
/// to start is removed.
pub async fn start(docker: &Docker, launch: &LaunchSpec) -> anyhow::Result<()> {
    let options = CreateContainerOptionsBuilder::default()
        .name(&launch.name)
        .build();
    docker
        .create_container(Some(options), launch.create_body())
        .await
        .with_context(|| format!("cannot create container {}", launch.name))?;
    if launch.sealed {
        let uploads = super::sealed::uploads_for(&launch.volumes);
        let owner = (u64::from(CONTAINER_UID), u64::from(CONTAINER_GID));
        if let Err(e) = super::sealed::upload_all(docker, &launch.name, &uploads, owner).await {
            let _ = super::manage::remove(docker, &launch.name).await;
            return Err(e);
        }
    }
    if let Err(e) = docker.start_container(&launch.name, None).await {
        let _ = super::manage::remove(docker, &launch.name).await;
        return Err(e).with_context(|| format!("cannot start container {}", launch.name));
    }
    Ok(())
}

/// Checks what the launch needs, in order (see [`super::preflight`]), building images with
/// `--yes` or when the user says so on a terminal. The engine, the image to run, and the vault
/// when the check opened it.
async fn preflight(
    args: &RunArgs,
    roster: &crate::launcher::roster::Roster,
    agent: &str,
    paths: &HostPaths,
    workspace: &Path,
) -> anyhow::Result<(
    Docker,
    String,
    Option<crate::launcher::vault::db::CredentialDb>,
)> {
    use super::preflight::Finding;
    let mut findings = Vec::new();
    let docker = match crate::podman::connect().await {
        Ok(docker) => Some(docker),
        Err(e) => {
            findings.push(Finding::required(
                "the Podman API cannot be reached",
                e.to_string(),
            ));
            None
        }
    };
    let mut image = None;
    if let Some(docker) = &docker {
        match &args.image {
            Some(given) => match crate::image::build::image_exists(docker, given).await {
                Ok(true) => image = Some(given.clone()),
                Ok(false) => findings.push(Finding::required(
                    format!("there is no image {given}"),
                    "name an existing image, or leave --image out to build one",
                )),
                Err(e) => findings.push(Finding::required(
                    format!("cannot look up {given}: {e}"),
                    "",
                )),
            },
            None => {
                let selection = match &args.agents {
                    Some(raw) => Selection::parse(raw),
                    None => Selection::Names(vec![agent.to_owned()]),
                };
                let mut req = args.image_args.request(selection, false)?;
                req.check_only = !args.yes;
                match ensure_images(docker, roster, &req).await {
                    Ok(set) => image = Some(set.l1),
                    Err(crate::image::BuildError::NotBuilt { needed }) => {
                        let what = needed
                            .iter()
                            .map(|(tag, why)| format!("{tag} is {why}"))
                            .collect::<Vec<_>>()
                            .join("; ");
                        if super::preflight::ask_to_build(&what) {
                            req.check_only = false;
                            image = Some(ensure_images(docker, roster, &req).await?.l1);
                        } else {
                            findings.push(Finding::required(
                                what,
                                "run again with --yes to build it, or build it first with \
                                 `terok-executor build` (same --base, --agents and --sources)",
                            ));
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    let (vault_findings, vault_db) = super::preflight::vault_check(paths, roster, agent);
    findings.extend(vault_findings);
    findings.extend(super::preflight::ssh_findings(workspace));
    super::preflight::report(&findings)?;
    match (docker, image) {
        (Some(docker), Some(image)) => Ok((docker, image, vault_db)),
        _ => bail!("the preflight found no image to run"),
    }
}

/// Takes a launch's vault tokens and broker files back, and removes its task directory, when
/// the launch fails before its container runs.
struct Unwind<'a> {
    paths: &'a HostPaths,
    name: &'a str,
    armed: bool,
}

impl Drop for Unwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            super::credentials::revoke(self.paths, self.name);
            let _ = std::fs::remove_dir_all(containers_dir().join(self.name));
        }
    }
}

/// Starts the broker of the running container `name`.
async fn start_broker(
    docker: &Docker,
    name: &str,
    broker: &super::broker::Broker,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<()> {
    let inspect = docker
        .inspect_container(name, None)
        .await
        .with_context(|| format!("cannot inspect {name}"))?;
    let id = inspect.id.context("the container has no id")?;
    let pid = inspect
        .state
        .and_then(|s| s.pid)
        .filter(|pid| *pid > 0)
        .context("the container has no process (did it exit at once?)")?;
    let broker = broker.clone();
    tokio::task::spawn_blocking(move || broker.start(&id, pid, owner))
        .await
        .context("the broker's start was cancelled")?
}

/// Streams the container's output to ours until it exits; its exit code (which becomes ours).
async fn follow(docker: &Docker, name: &str) -> anyhow::Result<u8> {
    use std::io::Write;
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(name, Some(options));
    while let Some(item) = logs.next().await {
        match item.context("cannot read the container's output")? {
            bollard::container::LogOutput::StdErr { message } => {
                std::io::stderr().write_all(&message)?;
            }
            other => {
                std::io::stdout().write_all(&other.into_bytes())?;
                std::io::stdout().flush()?;
            }
        }
    }
    let options = WaitContainerOptionsBuilder::default().build();
    let code = match docker.wait_container(name, Some(options)).next().await {
        Some(Ok(r)) => r.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => return Err(e).context("cannot wait for the container"),
        None => bail!("the container {name} vanished before it exited"),
    };
    Ok(u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acp_daemon_runs_this_binary_with_the_podman_runtime() {
        let cmd = acp_daemon_command("terok-executor-ab12", Path::new("/r/acp/x.sock")).unwrap();
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "acp",
                "--runtime",
                "podman",
                "terok-executor-ab12",
                "/r/acp/x.sock"
            ]
        );
        assert_eq!(
            cmd.get_program(),
            std::env::current_exe().unwrap().as_os_str()
        );
    }

    #[test]
    fn task_ids_are_short_hex() {
        let id = new_task_id();
        assert_eq!(id.len(), 8);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, new_task_id());
    }
}
