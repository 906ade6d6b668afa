//! Command-line interface: the clap definitions and what each command runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::acp::daemon::{self, Outcome};
use crate::acp::endpoint::{self, Endpoint};
use crate::acp::runtime::{LocalRuntime, PodmanRuntime, Runtime};
use crate::acp::server::ProxyConfig;
use crate::acp::{bridge, listing};

#[derive(Debug, Parser)]
#[command(
    name = "terok-executor",
    version,
    about = "Runs AI coding agents in containers and serves them to editors as one ACP agent"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a container's agents as one ACP agent on a Unix socket.
    Acp(AcpArgs),
    /// Show the proxy at work on two embedded fixture agents (no container engine needed).
    Demo(crate::demo::DemoArgs),
    /// List the agents (and with --all, the tools) in the roster.
    Agents(crate::launcher::cli::AgentsArgs),
    /// Manage the vault's host-side files (routes, credential leak scan).
    Vault(crate::launcher::cli::VaultArgs),
    /// Store an agent's API key in the vault, list what it holds, or log out.
    Auth(crate::launcher::auth::AuthArgs),
    /// Build the L0 and L1 agent images (skipped when they exist, unless --rebuild).
    Build(crate::image::cli::BuildArgs),
    /// Run an agent in a hardened container (headless with -p, interactive, or with --acp).
    Run(Box<crate::container::cli::RunArgs>),
    /// List the containers started by terok-executor.
    List(crate::container::cli::ListArgs),
    /// Stop and remove containers started by terok-executor.
    Stop(crate::container::cli::StopArgs),
    /// Show what tasks leave on disk and what removing orphaned task files would free.
    Storage(crate::container::cli::ListArgs),
    /// Copy a directory or file (default: the workspace) out of a container.
    Pull(crate::container::cli::PullArgs),
    /// Check the host (and a container) and say how to fix what is wrong.
    Doctor(crate::container::cli::DoctorArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(crate::completions::CompletionsArgs),
    /// Print the manual (one page per command), or write its pages to a directory.
    Man(crate::manpage::ManArgs),
    /// Run the embedded fixture ACP agent (for tests, demos and benchmarks).
    #[command(hide = true, disable_help_flag = true)]
    FixtureAgent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// A running Podman container, reached through Podman's API socket.
    Podman,
    /// A host directory whose `terok-<agent>-acp` executables are the agents.
    Local,
}

impl RuntimeKind {
    fn as_arg(self) -> &'static str {
        match self {
            RuntimeKind::Podman => "podman",
            RuntimeKind::Local => "local",
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AcpArgs {
    #[command(subcommand)]
    pub command: Option<AcpCommand>,
    /// Where the agents live.
    #[arg(long, value_enum, default_value = "podman")]
    pub runtime: RuntimeKind,
    /// The container (for `local`: the directory holding the wrappers).
    #[arg(required = true)]
    pub container: Option<String>,
    /// The Unix socket to listen on.
    #[arg(required = true)]
    pub socket: Option<PathBuf>,
    /// Write every frame of every hop to FILE as NDJSON (also `TEROK_ACP_TRACE`); secrets
    /// are redacted, text elided unless `--trace-content`.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Keep prompt, file and message text in the trace (also `TEROK_ACP_TRACE_CONTENT=1`).
    #[arg(long)]
    pub trace_content: bool,
}

#[derive(Debug, Subcommand)]
pub enum AcpCommand {
    /// Show which containers offer an ACP endpoint (ACTIVE, READY or UNSUPPORTED).
    List {
        #[arg(long, value_enum, default_value = "podman")]
        runtime: RuntimeKind,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Bridge an editor's stdio to a container's ACP daemon, starting the daemon if needed.
    Connect {
        #[arg(long, value_enum, default_value = "podman")]
        runtime: RuntimeKind,
        /// The container (for `local`: the directory holding the wrappers).
        container: String,
        /// `vault-login <AGENT>`: store the agent's API key in the host's vault and tell the
        /// daemon, instead of bridging (what an editor's terminal login runs).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "LOGIN"
        )]
        extra: Vec<String>,
    },
    /// Print a wire trace (`acp --trace FILE`) as a timeline per session, with round trips.
    Trace {
        /// The trace file.
        file: PathBuf,
    },
    /// Ask a running daemon what it holds: connections, sessions, agent processes, probes,
    /// counters and usage.
    Status {
        #[arg(long, value_enum, default_value = "podman")]
        runtime: RuntimeKind,
        /// The container (for `local`: the directory holding the wrappers).
        #[arg(required_unless_present = "socket")]
        container: Option<String>,
        /// The daemon's socket, instead of the container's endpoint.
        #[arg(long, conflicts_with = "container")]
        socket: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Watch every running daemon live: one row per session, with its state, update rate and
    /// cost (keys: s sort, f filter by container, q quit).
    Top {
        /// Seconds between refreshes (0.1 to 3600).
        #[arg(long, value_name = "SECS", default_value = "1", value_parser = crate::acp::top::parse_interval)]
        interval: std::time::Duration,
    },
}

impl Cli {
    /// Whether the command's own output is the point, so logs default to warnings only (the
    /// demo's script; `acp top`, whose screen a log line would tear).
    pub fn quiet_logs(&self) -> bool {
        match &self.command {
            Command::Demo(args) => !args.serve,
            Command::Acp(AcpArgs {
                command: Some(AcpCommand::Top { .. }),
                ..
            }) => true,
            _ => false,
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Acp(AcpArgs {
            command: Some(AcpCommand::List { runtime, json }),
            ..
        }) => tokio_runtime()?.block_on(run_list(runtime, json)),
        Command::Acp(AcpArgs {
            command:
                Some(AcpCommand::Connect {
                    runtime,
                    container,
                    extra,
                }),
            ..
        }) => run_connect(runtime, &container, &extra),
        Command::Acp(AcpArgs {
            command:
                Some(AcpCommand::Status {
                    runtime,
                    container,
                    socket,
                    json,
                }),
            ..
        }) => tokio_runtime()?.block_on(run_status(runtime, container, socket, json)),
        Command::Acp(AcpArgs {
            command: Some(AcpCommand::Trace { file }),
            ..
        }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            print!("{}", crate::acp::trace_view::render(&text)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Acp(AcpArgs {
            command: Some(AcpCommand::Top { interval }),
            ..
        }) => tokio_runtime()?.block_on(crate::acp::top::run(crate::acp::top::Options {
            acp_dir: endpoint::acp_dir(),
            interval,
        })),
        Command::Acp(args) => {
            // The daemon outlives many streams: before its runtime's threads start.
            crate::alloc::settle_for_a_daemon();
            tokio_runtime()?.block_on(run_acp(args))
        }
        Command::Demo(args) => tokio_runtime()?.block_on(crate::demo::run(args)),
        Command::Agents(args) => {
            crate::launcher::cli::run_agents(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Vault(args) => crate::launcher::cli::run_vault(&args).map(|()| ExitCode::SUCCESS),
        Command::Auth(args) => crate::launcher::auth::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Build(args) => tokio_runtime()?
            .block_on(crate::image::cli::run_build(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Run(args) => tokio_runtime()?.block_on(crate::container::launch::run(*args)),
        Command::List(args) => tokio_runtime()?.block_on(crate::container::run_list(args)),
        Command::Stop(args) => tokio_runtime()?.block_on(crate::container::run_stop(args)),
        Command::Storage(args) => tokio_runtime()?.block_on(crate::container::run_storage(args)),
        Command::Pull(args) => tokio_runtime()?.block_on(crate::container::run_pull(args)),
        Command::Doctor(args) => tokio_runtime()?.block_on(crate::container::run_doctor(args)),
        Command::Completions(args) => crate::completions::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Man(args) => crate::manpage::run(&args).map(|()| ExitCode::SUCCESS),
        Command::FixtureAgent { args } => {
            let code = acp_fixtures::run(args);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Builds the runtime a command names.
pub async fn make_runtime(kind: RuntimeKind, container: &str) -> anyhow::Result<Arc<dyn Runtime>> {
    match kind {
        RuntimeKind::Local => Ok(Arc::new(LocalRuntime::new(container)?)),
        RuntimeKind::Podman => Ok(Arc::new(PodmanRuntime::connect(container).await?)),
    }
}

async fn run_acp(args: AcpArgs) -> anyhow::Result<ExitCode> {
    let (Some(container), Some(socket)) = (args.container, args.socket) else {
        anyhow::bail!("usage: terok-executor acp [--runtime podman|local] <CONTAINER> <SOCKET>");
    };
    let runtime = make_runtime(args.runtime, &container).await?;
    let mut config = ProxyConfig::from_env();
    config.vault = daemon_vault(args.runtime, &container);
    // The task's agent config: `TEROK_ACP_AGENT_CONFIG`, else the container's task directory.
    let agent_config = match std::env::var_os("TEROK_ACP_AGENT_CONFIG") {
        Some(dir) => Some(std::path::PathBuf::from(dir)),
        None if matches!(args.runtime, RuntimeKind::Podman) => {
            Some(crate::container::launch::agent_config_dir(&container))
        }
        None => None,
    };
    if let Some(dir) = agent_config {
        config.session_defaults = crate::launcher::agent_config::session_defaults(&dir);
    }
    if let Some(path) = args.trace {
        config.trace = Some(crate::acp::trace::TraceConfig {
            path,
            content: false,
        });
    }
    if let Some(trace) = config.trace.as_mut() {
        trace.content |= args.trace_content;
        // Say so now, not in a log nobody reads: a trace that cannot be written is no trace.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&trace.path)
            .with_context(|| format!("cannot write the trace {}", trace.path.display()))?;
    }
    match daemon::run(runtime, &socket, config).await? {
        Outcome::AlreadyServed | Outcome::Stopped => Ok(ExitCode::SUCCESS),
    }
}

/// The host's vault for the daemon of `container`, when there is one: editors may then log
/// its agents in through it.
fn daemon_vault(
    runtime: RuntimeKind,
    container: &str,
) -> Option<crate::acp::vault_login::VaultHandle> {
    let exe = std::env::current_exe().ok()?.display().to_string();
    let command = vec![
        exe,
        "acp".into(),
        "connect".into(),
        "--runtime".into(),
        runtime.as_arg().into(),
        container.into(),
    ];
    let subject = endpoint_for(runtime, container).ok()?.0.name;
    let vault = crate::container::vault_login::DaemonVault::find(&subject, command)?;
    Some(crate::acp::vault_login::VaultHandle(Arc::new(vault)))
}

async fn run_list(runtime: RuntimeKind, json: bool) -> anyhow::Result<ExitCode> {
    let dir = endpoint::acp_dir();
    let (entries, nothing) = match runtime {
        RuntimeKind::Podman => (
            listing::list_podman(&dir).await?,
            "no running containers".to_owned(),
        ),
        // Local "containers" are directories: only the sockets of their daemons say they exist.
        RuntimeKind::Local => (
            listing::list_sockets(&dir).await?,
            format!("no daemon sockets in {}", dir.display()),
        ),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print!("{}", listing::render_table(&entries, &nothing));
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_status(
    runtime: RuntimeKind,
    container: Option<String>,
    socket: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let socket = match (socket, container) {
        (Some(socket), _) => socket,
        (None, Some(container)) => endpoint_for(runtime, &container)?.0.socket,
        (None, None) => anyhow::bail!("name a container or give --socket"),
    };
    let status = crate::acp::inspect::query(&socket).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", crate::acp::status::render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

/// The endpoint name and daemon argument for a container: Podman containers by name, local
/// directories by their base name.
pub(crate) fn endpoint_for(
    runtime: RuntimeKind,
    container: &str,
) -> anyhow::Result<(Endpoint, String)> {
    match runtime {
        RuntimeKind::Podman => Ok((Endpoint::named(container)?, container.to_owned())),
        RuntimeKind::Local => {
            let dir = std::fs::canonicalize(container)
                .with_context(|| format!("cannot open {container}"))?;
            let base = dir.file_name().and_then(|n| n.to_str()).unwrap_or("local");
            let name: String = base
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let name = format!("local-{}", name.trim_start_matches('.'));
            Ok((Endpoint::named(&name)?, dir.to_string_lossy().into_owned()))
        }
    }
}

fn run_connect(
    runtime: RuntimeKind,
    container: &str,
    extra: &[String],
) -> anyhow::Result<ExitCode> {
    let login = match crate::acp::vault_login::login_request(extra) {
        Some(Ok(agent)) => Some(agent),
        Some(Err(usage)) => {
            eprintln!("terok-executor: {usage}");
            return Ok(ExitCode::from(2));
        }
        None if !extra.is_empty() => {
            eprintln!(
                "terok-executor: acp connect takes one container, got extra arguments {extra:?}. \
                 The only login it runs is `{} <agent>`, which an editor offers as \
                 `<agent>:{}`; log other agents in on the host, then reconnect.",
                crate::acp::vault_login::VAULT_LOGIN,
                crate::acp::vault_login::VAULT_LOGIN,
            );
            return Ok(ExitCode::from(2));
        }
        None => None,
    };
    let (endpoint, target) = endpoint_for(runtime, container)?;
    let rt = tokio_runtime()?;
    let outcome: anyhow::Result<()> = rt.block_on(async {
        let mut daemon = std::process::Command::new(std::env::current_exe().context("cannot find this executable")?);
        daemon.args(["acp", "--runtime", runtime.as_arg(), &target]).arg(&endpoint.socket);
        if endpoint.ensure_daemon(daemon).await? {
            tracing::info!(socket = %endpoint.socket.display(), log = %endpoint.log.display(), "started the ACP daemon");
        }
        if let Some(agent) = login {
            return crate::container::vault_login::login(&agent, &endpoint.socket).await;
        }
        bridge::pump(&endpoint.socket, &endpoint.log, tokio::io::stdin(), tokio::io::stdout()).await?;
        Ok(())
    });
    // Reading stdin parks a blocking thread that would hold up an orderly runtime shutdown.
    rt.shutdown_background();
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("terok-executor: {e:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}
