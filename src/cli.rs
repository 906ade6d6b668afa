//! Command-line interface: the clap definitions and what each command runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::acp::daemon::{self, Outcome};
use crate::acp::runtime::{LocalRuntime, Runtime};
use crate::acp::server::ProxyConfig;

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
    /// Build the L0 and L1 agent images (skipped when they exist, unless --rebuild).
    Build(crate::image::cli::BuildArgs),
    /// Run an agent in a hardened container (headless with -p, interactive, or with --acp).
    Run(Box<crate::container::cli::RunArgs>),
    /// List the containers started by terok-executor.
    List(crate::container::cli::ListArgs),
    /// Stop and remove containers started by terok-executor.
    Stop(crate::container::cli::StopArgs),
    /// Run the embedded fixture ACP agent (for tests, demos and benchmarks).
    #[command(hide = true, disable_help_flag = true)]
    FixtureAgent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// A host directory whose `terok-<agent>-acp` executables are the agents.
    Local,
}

#[derive(Debug, clap::Args)]
pub struct AcpArgs {
    /// Where the agents live.
    #[arg(long, value_enum, default_value = "local")]
    pub runtime: RuntimeKind,
    /// The container (for `local`: the directory holding the wrappers).
    pub container: String,
    /// The Unix socket to listen on.
    pub socket: PathBuf,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Acp(args) => tokio_runtime()?.block_on(run_acp(args)),
        Command::Demo(args) => tokio_runtime()?.block_on(crate::demo::run(args)),
        Command::Agents(args) => {
            crate::launcher::cli::run_agents(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Vault(args) => crate::launcher::cli::run_vault(&args).map(|()| ExitCode::SUCCESS),
        Command::Build(args) => tokio_runtime()?
            .block_on(crate::image::cli::run_build(args))
            .map(|()| ExitCode::SUCCESS),
        Command::Run(args) => tokio_runtime()?.block_on(crate::container::launch::run(*args)),
        Command::List(args) => tokio_runtime()?.block_on(crate::container::run_list(args)),
        Command::Stop(args) => tokio_runtime()?.block_on(crate::container::run_stop(args)),
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
pub fn make_runtime(kind: RuntimeKind, container: &str) -> anyhow::Result<Arc<dyn Runtime>> {
    match kind {
        RuntimeKind::Local => Ok(Arc::new(LocalRuntime::new(container)?)),
    }
}

async fn run_acp(args: AcpArgs) -> anyhow::Result<ExitCode> {
    let runtime = make_runtime(args.runtime, &args.container)?;
    match daemon::run(runtime, &args.socket, ProxyConfig::from_env()).await? {
        Outcome::AlreadyServed | Outcome::Stopped => Ok(ExitCode::SUCCESS),
    }
}
