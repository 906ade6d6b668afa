//! The `terok-executor` command line: parses arguments and calls the library.

use clap::{Parser, Subcommand};
use terok_executor::launcher::cli::{run_agents, run_vault, AgentsArgs, VaultArgs};

#[derive(Debug, Parser)]
#[command(name = "terok-executor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the agents (and with --all, the tools) in the roster.
    Agents(AgentsArgs),
    /// Manage the vault's host-side files (routes, credential leak scan).
    Vault(VaultArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match Cli::parse().command {
        Command::Agents(args) => run_agents(&args),
        Command::Vault(args) => run_vault(&args),
    }
}
